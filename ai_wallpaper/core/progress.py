"""Progress display per stage and step: a live line on a terminal, sparse structured logs otherwise."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import psutil

from ai_wallpaper.core import log

logger = log.get(__name__)


class StageProgress:
    """Callable handed to a stage core as its `progress(step, total)`."""

    def __init__(self, label: str, index: int, count: int, stream: TextIO | None, log_every: float = 0.25) -> None:
        self.label, self.index, self.count = label, index, count
        self.stream = stream
        self.log_every = log_every
        self._next_log = 0.0
        self._started = time.monotonic()

    def __call__(self, step: int, total: int) -> None:
        fraction = step / total if total else 1.0
        if self.stream is not None:
            elapsed = time.monotonic() - self._started
            eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
            bar = "#" * int(fraction * 24)
            self.stream.write(
                f"\r[{self.index}/{self.count}] {self.label:<10} [{bar:<24}] {step}/{total} "
                f"{elapsed:6.1f}s eta {eta:5.1f}s"
            )
            self.stream.flush()
        elif fraction >= self._next_log or step == total:
            logger.info("progress", stage=self.label, step=step, total=total)
            self._next_log = fraction + self.log_every

    def finish(self) -> None:
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


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
