"""Process signals as a cancel request: the first SIGTERM/SIGINT asks the work to stop at its next
step (so the run is recorded as cancelled and can be resumed), a second one stops it at once."""

from __future__ import annotations

import signal
import threading
from types import FrameType

from ai_wallpaper.core import log

logger = log.get(__name__)


class CancelOnSignal:
    """SIGTERM/SIGINT request a cancel at the next step; the run is then recorded as cancelled."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __enter__(self) -> CancelOnSignal:
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():  # a second signal: stop now
            raise KeyboardInterrupt
        logger.warning("cancel requested; stopping at the next step", signal=signal.Signals(signum).name)
        self.event.set()

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
