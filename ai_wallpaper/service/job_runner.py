"""One generation in a child process, and the bookkeeping that makes its history row end final.

Why a child process per run: CUDA/torch never give all memory back inside a process; a fresh
interpreter per run returns everything to the OS between runs. The child is `ai-wallpaper generate
--run-id ID --trigger T`; it records its own history row. If it dies without finishing that row
(killed, crashed, timed out, failed before its run started), the runner finishes or writes the row
itself: failed with the child's own one-line error (`error: ...` as the CLI prints it), or cancelled
when a stop was requested.

The child runs in its own session: a terminal's Ctrl-C reaches only the parent (the daemon or
`ai-wallpaper next`), which then stops the child itself, and a parent killed with SIGKILL does not
take the child with it: the child finishes and records its run (its output pipe then has no reader;
writes fail with EPIPE, which logging and the CLI swallow). Where the OS has no process groups
(Windows) the signals go to the child alone.

The child's output is passed through to ours; when ours is the journal, each line gets the journal
priority of its level (core/log.py), so the child's warnings and errors are the unit's too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ai_wallpaper.core import log
from ai_wallpaper.core.history import FinalStatus, History, RunStatus
from ai_wallpaper.core.untrusted_input import loads_json
from ai_wallpaper.render.run_record import new_run_id

logger = log.get(__name__)
# The child gets this long to cancel cleanly after SIGTERM, then SIGKILL. Must stay below the unit's
# TimeoutStopSec (60 s) so systemd never has to kill the daemon itself.
CHILD_STOP_GRACE_S = 40.0
_POLL_S = 0.1
_TAIL_LINES = 200  # enough to still hold the `error:` block after a long list of config problems
_CONSOLE_LOG = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}\S*\s+\[")
_WARNING = re.compile(r"\b\w*Warning: ")


def generate_command(config_file: Path | None) -> list[str]:
    """The default job: `python -m ai_wallpaper generate [--config F] --run-id ID --trigger T`."""
    # --config after the subcommand: argparse lets a subparser's default overwrite a global option.
    config = ["--config", str(config_file)] if config_file else []
    return [sys.executable, "-m", "ai_wallpaper", "generate", *config, "--run-id", "{run_id}",
            "--trigger", "{trigger}"]


@dataclass(frozen=True)
class RunOutcome:
    """How the run ended, as its history row now says."""

    run_id: str
    status: RunStatus
    returncode: int | None
    error: str | None
    # The `error: ...` block the child printed itself (already on our stderr), if it printed one.
    child_message: str | None = None

    @property
    def error_already_shown(self) -> bool:
        """The recorded error is one the child printed (so a summary need not repeat it)."""
        return bool(self.error and self.child_message and self.error in self.child_message)


# --- the child's own error message ----------------------------------------------------------------
def _is_log_line(line: str) -> bool:
    text = line.strip()
    if _CONSOLE_LOG.match(text):
        return True
    if text.startswith("{") and text.endswith("}"):
        with contextlib.suppress(ValueError):
            return isinstance(loads_json(text), dict)
    return False


def reported_error(lines: Sequence[str]) -> str | None:
    """The CLI's last `error: ...` line with its indented continuation lines (config problems,
    `  hint: ...`), without the `error: ` prefix; None if the child printed none."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("error: "):
            block = [lines[i].removeprefix("error: ").strip()]
            for line in lines[i + 1:]:
                if not line.strip() or not line[0].isspace():
                    break
                block.append(line.rstrip())
            return "\n".join(block)
    return None


def last_plain_line(lines: Sequence[str]) -> str | None:
    """The last line that is neither a log line, an indented continuation nor a Python warning."""
    for line in reversed(lines):
        if line.strip() and not line[0].isspace() and not _is_log_line(line) and not _WARNING.search(line):
            return line.strip()
    return None


def failure_reason(returncode: int | None, lines: Sequence[str]) -> str:
    """Why a child that did not finish its own row failed, in the words it printed when it can."""
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (out of memory? see `journalctl -k`)" if name == "SIGKILL" else ""
        return f"generation process was killed by signal {name}{hint}"
    if message := reported_error(lines):
        return message
    if line := last_plain_line(lines):
        return f"generation process exited with exit code {returncode}: {line}"
    return f"generation process exited with exit code {returncode} without an error message"


# --- the runner -----------------------------------------------------------------------------------
class JobRunner:
    """Runs one generation child at a time and makes sure its history row ends final."""

    def __init__(self, history: History, command: Sequence[str], *, timeout_s: float,
                 stop_grace_s: float = CHILD_STOP_GRACE_S,
                 progress_file: Callable[[str], Path] | None = None) -> None:
        """progress_file: where a run publishes its progress (Paths.run_progress); removed after the child,
        which removes it itself unless it was killed."""
        self.history = history
        self.progress_file = progress_file
        self.command = list(command)
        self.timeout_s = timeout_s
        self.stop_grace_s = stop_grace_s
        self.stopping = threading.Event()
        self.stop_reason = "stop requested"
        self._kill_now = threading.Event()
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def request_stop(self, reason: str) -> None:
        """Stop the current child (SIGTERM, SIGKILL after the grace period) and start no other.
        Only sets flags, so it is safe in a signal handler: the thread waiting for the child signals it."""
        if not self.stopping.is_set():
            self.stop_reason = reason
            self.stopping.set()

    def kill_now(self) -> None:
        """After request_stop: do not wait out the grace period (a second Ctrl-C or SIGTERM)."""
        self._kill_now.set()

    def on_signal(self, reason: str) -> None:
        """What a SIGINT/SIGTERM handler does: the first one stops the child, a second one kills it."""
        if self.stopping.is_set():
            self.kill_now()
        else:
            self.request_stop(reason)

    def run(self, trigger: str, run_id: str | None = None) -> RunOutcome | None:
        """Run one generation; None if one is already running (one job at a time) or a stop was requested."""
        if not self._lock.acquire(blocking=False):
            logger.warning("a run is already in progress; this one is skipped", trigger=trigger)
            return None
        run_id = run_id or new_run_id()
        log.bind_run(run_id)
        try:
            if self.stopping.is_set():
                logger.info("stopping; the run is not started", trigger=trigger)
                return None
            return self._run(run_id, trigger)
        finally:
            log.unbind_run()
            self._lock.release()

    def _run(self, run_id: str, trigger: str) -> RunOutcome:
        argv = [a.replace("{run_id}", run_id).replace("{trigger}", trigger) for a in self.command]
        started = time.monotonic()
        logger.info("run starting", trigger=trigger)
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        assert proc.stdout is not None
        reader = threading.Thread(target=_pump, args=(proc.stdout, tail), daemon=True)
        reader.start()
        timed_out, killed = self._wait(proc)
        reader.join(timeout=5)  # a grandchild may hold the pipe open; its output is not the reason
        if self.progress_file is not None:
            with contextlib.suppress(OSError):
                self.progress_file(run_id).unlink(missing_ok=True)
        rc = proc.returncode
        status: FinalStatus
        error: str | None = None
        if rc == 0 and not timed_out:
            status = "success"
        elif timed_out:
            status = "failed"
            took = f"{self.timeout_s / 60:.0f} min" if self.timeout_s >= 120 else f"{self.timeout_s:.0f} s"
            error = f"timed out after {took} (schedule.run_timeout_minutes); the generation was stopped"
        elif self.stopping.is_set():
            status = "cancelled"
            error = f"cancelled: {self.stop_reason}" + (f"; {killed}" if killed else "")
        else:
            status, error = "failed", failure_reason(rc, list(tail))
        outcome = self._settle_row(run_id, trigger, proc.pid, rc, status, error, timed_out=timed_out)
        outcome = dataclasses.replace(outcome, child_message=reported_error(list(tail)))
        # An error the child printed is just above in the same output: said once.
        logger.info("run finished", status=outcome.status, returncode=rc,
                    seconds=round(time.monotonic() - started, 2),
                    error="(printed above)" if outcome.error_already_shown else outcome.error)
        return outcome

    def _wait(self, proc: subprocess.Popen[bytes]) -> tuple[bool, str | None]:
        """Wait for the child, stopping it on timeout or request. Returns (timed_out, how it was
        killed with SIGKILL, if it was)."""
        deadline = time.monotonic() + self.timeout_s
        term_sent: float | None = None
        timed_out = False
        killed: str | None = None
        while True:
            try:
                proc.wait(timeout=_POLL_S)
                return timed_out, killed
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if term_sent is None and (self.stopping.is_set() or now >= deadline):
                timed_out = not self.stopping.is_set()
                if timed_out:
                    logger.error("run timed out; stopping it", timeout_s=self.timeout_s)
                _stop_child(proc, kill=False)
                term_sent = now
            elif term_sent is not None and not killed and (
                    self._kill_now.is_set() or now - term_sent >= self.stop_grace_s):
                if self._kill_now.is_set():
                    killed = "killed (SIGKILL) on a second request"
                else:
                    killed = f"the generation did not stop within {self.stop_grace_s:.0f} s and was killed (SIGKILL)"
                logger.warning("killing the generation", why=killed)
                _stop_child(proc, kill=True)

    def _settle_row(self, run_id: str, trigger: str, pid: int, rc: int | None, status: FinalStatus,
                    error: str | None, *, timed_out: bool) -> RunOutcome:
        if not self.history.record_unstarted(run_id, trigger=trigger, status=status, error=error, pid=pid):
            # The child wrote its row: finish it if it could not (a timeout beats its "cancelled").
            replacing: tuple[RunStatus, ...] = ("running", "cancelled") if timed_out else ("running",)
            self.history.finish_if_running(run_id, status="failed" if status == "success" else status,
                                           error=error or "generation exited without finishing its run",
                                           replacing=replacing)
        record = self.history.get(run_id)
        if record is None:  # the row was deleted under us: report what we know
            return RunOutcome(run_id, status, rc, error)
        return RunOutcome(run_id, record.status, rc, record.error)


def _stop_child(proc: subprocess.Popen[bytes], *, kill: bool) -> None:
    """SIGTERM (or SIGKILL) to the child's process group: its own helpers stop with it."""
    killpg = getattr(os, "killpg", None)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if killpg is not None:
            killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        elif kill:
            proc.kill()
        else:
            proc.terminate()


class _JournalPriorities:
    """The journal prefix for each relayed line; an `error:` block's indented lines share its priority."""

    def __init__(self) -> None:
        self.block: int | None = None

    def __call__(self, line: str) -> bytes:
        continued = bool(line[:1].isspace()) and self.block is not None
        priority = self.block if continued else log.line_priority(line)
        self.block = priority if continued or line.startswith("error: ") else None
        return f"<{priority}>".encode() if priority is not None else b""


def _pump(stream: IO[bytes], tail: deque[str]) -> None:
    """Pass the child's output through to ours (journald) and keep the last lines for the error.
    If our own stderr fails, keep draining: a child blocked on a full pipe would never finish."""
    out: IO[bytes] | None = getattr(sys.stderr, "buffer", None)
    prefix = _JournalPriorities() if log.journal_stream(sys.stderr) else None
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if out is not None:
            try:
                out.write((prefix(line) if prefix is not None else b"") + raw)
                out.flush()
            except (OSError, ValueError):
                out = None
        tail.append(line)
