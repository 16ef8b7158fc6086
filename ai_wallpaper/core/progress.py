"""Progress per stage and step: a tqdm bar on a terminal, sparse structured logs otherwise.

A run also publishes where it is (stage, step, percent) to a small JSON file per run id, at most once
a second (`publish_to`, called once by the run): `ai-wallpaper status` shows it and the daemon relays
it to systemd as the unit's STATUS=. The file is removed when the process ends; a reader ignores a
file whose process is gone (`read_run_progress`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import psutil
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ai_wallpaper.core import atomic, log
from ai_wallpaper.core.run_liveness import pid_alive
from ai_wallpaper.core.untrusted_input import read_small_json

logger = log.get(__name__)
PUBLISH_EVERY_S = 1.0  # within one stage; a new stage is published at once
_MAX_PROGRESS_BYTES = 64 * 1024  # a progress record is a few hundred bytes


@dataclass
class _Publisher:
    path: Path
    run_id: str
    started_at: str = field(default_factory=lambda: datetime.now().astimezone().isoformat())
    stage_started_at: str = ""
    last_write: float = float("-inf")
    last_stage: str | None = None
    failed: bool = False

    def publish(self, label: str, index: int, count: int, step: int, total: int) -> None:
        now = time.monotonic()
        new_stage = label != self.last_stage
        if self.failed or (not new_stage and now - self.last_write < PUBLISH_EVERY_S and step != total):
            return
        if new_stage:
            self.stage_started_at = datetime.now().astimezone().isoformat()
        self.last_write, self.last_stage = now, label
        percent = int(100 * step / total) if total else 0
        try:
            atomic.write_json(self.path, {
                "run_id": self.run_id, "pid": os.getpid(), "stage": label, "stage_index": index,
                "stage_count": count, "step": step, "total": total, "percent": percent,
                "run_started_at": self.started_at, "stage_started_at": self.stage_started_at,
                "updated_at": datetime.now().astimezone().isoformat()})
        except OSError as exc:  # a full disk must not fail the run over a status line
            self.failed = True
            logger.warning("cannot publish progress", file=str(self.path), error=exc.strerror)


_publisher: list[_Publisher] = []  # at most one: one run per process


def publish_to(path: Path, run_id: str) -> None:
    """Publish this process's stage progress to `path` from now on; the file goes when the process ends."""
    _publisher[:] = [_Publisher(path, run_id)]
    atexit.register(_remove, path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def read_run_progress(path: Path) -> dict[str, Any] | None:
    """The progress a live run published at `path`, or None (none yet, unreadable, or its process is gone)."""
    try:  # bounded and non-blocking: the daemon reads it every second, and a FIFO there must not hang it
        data = read_small_json(path, _MAX_PROGRESS_BYTES)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or not pid_alive(data["pid"]):
        return None
    return data


def describe(progress: dict[str, Any]) -> str:
    """`enhanced 42% (step 5/12)`: one line for `status` and systemd's STATUS=."""
    text = f"{progress.get('stage', '?')} {progress.get('percent', 0)}%"
    if progress.get("total"):
        text += f" (step {progress.get('step')}/{progress['total']})"
    return text


class StageProgress:
    """Callable handed to a stage core as its `progress(step, total)`; `finish()` when the stage ends."""

    def __init__(self, label: str, index: int, count: int, stream: TextIO | None, log_every: float = 0.25) -> None:
        self.label, self.index, self.count = label, index, count
        self.stream = stream
        self.log_every = log_every
        self._next_log = 0.0
        self._bar: Any = None
        self._redirect: contextlib.ExitStack | None = None
        for publisher in _publisher:
            publisher.publish(label, index, count, 0, 0)

    def __call__(self, step: int, total: int) -> None:
        for publisher in _publisher:
            publisher.publish(self.label, self.index, self.count, step, total)
        if self.stream is not None:
            bar = self._open_bar(total)
            if bar.total != total:
                bar.total = total
            bar.update(step - bar.n)
            return
        fraction = step / total if total else 1.0
        if fraction >= self._next_log or step == total:
            logger.info("progress", stage=self.label, step=step, total=total)
            self._next_log = fraction + self.log_every

    def _open_bar(self, total: int) -> Any:
        if self._bar is None and self.stream is not None:
            self._redirect = contextlib.ExitStack()
            # Log lines printed while the bar is shown go above it instead of through it.
            self._redirect.enter_context(logging_redirect_tqdm(tqdm_class=tqdm))
            # Follow the terminal's width, unless it reports none (a serial console): then 80 columns.
            sized = _columns(self.stream) > 0
            self._bar = tqdm(total=total, desc=f"[{self.index}/{self.count}] {self.label}", unit="step",
                             file=self.stream, leave=True, dynamic_ncols=sized, ncols=None if sized else 80)
        return self._bar

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.close()
            self._redirect = None


def _columns(stream: TextIO) -> int:
    """The terminal's width; 0 when it reports none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def terminal_stream() -> TextIO | None:
    return sys.stderr if sys.stderr.isatty() else None


@dataclass
class PeakMemory:
    """Samples this process's RSS in a thread (ru_maxrss is lifetime-wide, we need per stage)."""

    interval: float = 0.05
    peak_rss: int = 0
    peak_cuda: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
            self._stop.wait(self.interval)

    @contextmanager
    def measure(self) -> Iterator[PeakMemory]:
        cuda = _cuda_module()
        if cuda is not None:
            cuda.reset_peak_memory_stats()
        self.peak_rss = psutil.Process().memory_info().rss
        thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.peak_rss = max(self.peak_rss, psutil.Process().memory_info().rss)
            if cuda is not None:
                self.peak_cuda = int(cuda.max_memory_allocated())


def _cuda_module() -> Any:
    if "torch" not in sys.modules:
        return None
    import torch

    return torch.cuda if torch.cuda.is_available() else None
