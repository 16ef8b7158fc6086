"""Single-instance lock for the daemon: an OS lock on a file that holds the owner's pid.

- The OS lock (flock on POSIX, msvcrt.locking on Windows) dies with the process, even on SIGKILL, so
  a crashed daemon never leaves a stale lock; the pid in the file only names the holder.
- `lock_holder` (used by `status` and `next`) has to take the lock for an instant to see whether it is
  free; a daemon starting in that instant would fail. So `acquire` retries for RETRY_S before it gives
  up with exit 7: with systemd's `RestartPreventExitStatus=7` a daemon that lost such a race would
  stay down, so the race must not be able to decide anything.
- The pid is written only after the lock is held, and the daemon installs its signal handlers before
  it acquires (daemon.py), so whoever reads a pid here can signal it safely.
- Python's descriptors are not inheritable (PEP 446): the generation child never keeps the lock alive.
- No unconditional `fcntl` import: the CLI must start on Windows too.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import TracebackType

from ai_wallpaper.core.errors import LockedError

RETRY_S = 2.0
_RETRY_EVERY_S = 0.05
# Windows locks are mandatory and would hide the pid from readers: lock a byte far past it instead.
_WINDOWS_LOCK_OFFSET = 2**30


def _try_lock(fd: int, *, exclusive: bool) -> bool:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # Windows has no shared mode: probes lock briefly
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_UN)


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


class DaemonLock:
    def __init__(self, path: Path, *, retry_s: float = RETRY_S) -> None:
        self.path = Path(path)
        self.retry_s = retry_s
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (retrying for retry_s) or raise LockedError naming the pid that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.retry_s
        while not _try_lock(fd, exclusive=True):
            if time.monotonic() >= deadline:
                pid = _read_pid(fd)
                os.close(fd)
                who = f"pid {pid}" if pid else "another process"
                raise LockedError(
                    f"another ai-wallpaper daemon is already running ({who}; lock {self.path})",
                    hint="stop it first (systemctl --user stop ai-wallpaper, or kill that pid); "
                         "`ai-wallpaper status` shows it",
                )
            time.sleep(_RETRY_EVERY_S)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # Empty the file before unlocking, so nobody reads a dead pid as the holder.
        os.ftruncate(fd, 0)
        _unlock(fd)
        os.close(fd)

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def lock_holder(path: Path) -> int | None:
    """The pid holding the lock, -1 if it is held but the pid is not written yet, None if free.

    Probes with a shared, non-blocking lock held for an instant; `DaemonLock.acquire` retries past it."""
    try:
        fd = os.open(path, os.O_RDONLY if sys.platform != "win32" else os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        if not _try_lock(fd, exclusive=False):
            return _read_pid(fd) or -1
        _unlock(fd)
        return None
    finally:
        os.close(fd)
