"""structlog set-up: console renderer on a terminal, JSON lines otherwise (journald-friendly).

Standard-library loggers (diffusers, transformers, APScheduler, urllib3) are routed through the
same processors, so one run's lines all carry the bound `run_id`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "console", "json"]
_THIRD_PARTY = ("diffusers", "transformers", "apscheduler", "urllib3", "huggingface_hub", "peft")


def configure(level: str = "info", fmt: LogFormat = "auto", stream: Any = None) -> None:
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and hasattr(stream, "isatty") and stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=False),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty() if hasattr(stream, "isatty") else False)
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
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
            structlog.processors.format_exc_info,
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
        lib.setLevel(max(logging.WARNING, root.level) if name != "apscheduler" else root.level)
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
