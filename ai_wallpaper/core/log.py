"""structlog set-up: console renderer on a terminal, JSON lines otherwise (journald-friendly).

Standard-library loggers (diffusers, transformers, APScheduler, urllib3) are routed through the
same processors, so one run's lines all carry the bound `run_id`; below debug level they say only
warnings and errors.

When stderr is connected to the journal (systemd sets $JOURNAL_STREAM to its device:inode,
systemd.exec(5)), every line starts with its sd-daemon(3) priority prefix (`<4>` warning, `<3>` error),
which journald strips and stores as the entry's priority (SyslogLevelPrefix=, on by default): so
`journalctl -p warning` shows exactly the warnings and errors.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from typing import Any, Literal

import structlog

from ai_wallpaper.core.untrusted_input import loads_json

LogFormat = Literal["auto", "console", "json"]
_THIRD_PARTY = ("diffusers", "transformers", "apscheduler", "urllib3", "huggingface_hub", "peft")
# syslog priorities of our level names (sd-daemon(3)); a line without a prefix is stored as info.
PRIORITY = {"critical": 2, "exception": 3, "error": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
ERROR, WARNING = PRIORITY["error"], PRIORITY["warning"]
_PREFIXED = re.compile(r"^<[0-7]>")
_PY_WARNING = re.compile(r"\b\w*Warning: ")


def journal_stream(stream: Any) -> bool:
    """Whether `stream` is the journal's: $JOURNAL_STREAM holds the device and inode of the stream
    systemd connected stdout/stderr to, and this one is still it (not a pipe or file we were given)."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (int(dev), int(ino)) == (st.st_dev, st.st_ino)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def with_priority(text: str, priority: int) -> str:
    """Every line of `text` with the journal prefix (journald stores each line as its own entry)."""
    return "\n".join(line if _PREFIXED.match(line) else f"<{priority}>{line}" for line in text.split("\n"))


def line_priority(line: str) -> int | None:
    """The priority of a line another of our processes printed (the daemon relays its generation
    child's output): a JSON log line's level, a CLI `error: ` line, a Python warning; else None."""
    text = line.strip()
    if text.startswith("{") and text.endswith("}"):
        try:
            data = loads_json(text)
        except ValueError:
            return None
        level = data.get("level") if isinstance(data, dict) else None
        return PRIORITY.get(level) if isinstance(level, str) else None
    if text.startswith("error: "):
        return ERROR
    return WARNING if _PY_WARNING.search(text) else None


class _Prefixed:
    """A final renderer whose output starts with the journal priority of the entry's level."""

    def __init__(self, renderer: Any) -> None:
        self.renderer = renderer

    def __call__(self, logger: Any, name: str, event_dict: Any) -> str:
        priority = PRIORITY.get(str(event_dict.get("level", "info")), PRIORITY["info"])
        return with_priority(str(self.renderer(logger, name, event_dict)), priority)


def configure(level: str = "info", fmt: LogFormat = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    use_console = fmt == "console" or (fmt == "auto" and tty)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        # A person reads the local time to the second; a program gets ISO 8601 with the offset.
        structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S" if use_console else "iso", utc=False),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=tty)
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    if journal_stream(stream):
        renderer = _Prefixed(renderer)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # The console renderer draws tracebacks itself; JSON needs them as text.
            *([] if use_console else [structlog.processors.format_exc_info]),
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _THIRD_PARTY:
        # Their own handlers would print twice and bypass our format.
        lib = logging.getLogger(name)
        lib.handlers[:] = []
        lib.propagate = True
        # APScheduler's "Running job ..." twice a run is noise, but helps when debugging the schedule.
        lib.setLevel(root.level if name == "apscheduler" and root.level <= logging.DEBUG
                     else max(logging.WARNING, root.level))
    _quiet_library_progress()


def _quiet_library_progress() -> None:
    """diffusers/transformers print tqdm bars and their own log config; we show our own progress."""
    # Only when already imported: `plan` must stay free of torch/diffusers imports.
    if "diffusers" in sys.modules:
        from diffusers.utils import logging as dlog

        dlog.disable_default_handler()
        dlog.enable_propagation()
        dlog.disable_progress_bar()
    if "transformers" in sys.modules:
        from transformers.utils import logging as tlog

        tlog.disable_default_handler()
        tlog.enable_propagation()
        tlog.disable_progress_bar()


def route_library_logs() -> None:
    """Call after importing diffusers/transformers (models.py does)."""
    _quiet_library_progress()


def get(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind_run(run_id: str) -> None:
    structlog.contextvars.bind_contextvars(run_id=run_id)


def unbind_run() -> None:
    structlog.contextvars.unbind_contextvars("run_id")
