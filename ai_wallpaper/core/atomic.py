"""Atomic writes: a file or folder is made beside its target under a temp name, fsynced, renamed.

A crash leaves either the old file or the new one, never a torn one; a folder is either absent or
complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ai_wallpaper.core import log

logger = log.get(__name__)


def _default_mode() -> int:
    # mkstemp creates 0600 files; outputs should get the permissions a plain open() would give.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()
PRIVATE_UMASK = 0o077  # run folders, history, caches and wallpapers are the user's alone


def set_process_umask(mask: int = PRIVATE_UMASK) -> None:
    """Set the process umask (new dirs 0700, files 0600 with the default) and the mode atomic files get.

    Called once at start-up, before any thread: os.umask is process-wide, so it is never changed later."""
    global _FILE_MODE
    os.umask(mask)
    _FILE_MODE = 0o666 & ~mask


TEMP_SUFFIX = ".part"
# atomic_path's temp files: ".<target name>.<8 random characters from mkstemp>.part"
_TEMP_NAME = re.compile(r"^\.(.+)\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")


def temp_target(name: str) -> str | None:
    """The file name a leftover temp file of atomic_path was written for, or None if it is not one."""
    match = _TEMP_NAME.match(name)
    return match.group(1) if match else None


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yields a temp path beside `target`; on success it is renamed over `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, target)
        _fsync_dir(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_with(target: Path, writer: Callable[[IO[bytes]], Any]) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        writer(fh)


def write_bytes(target: Path, data: bytes) -> None:
    write_with(target, lambda fh: fh.write(data))


def write_text(target: Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: Path, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def replace_dir(target: Path, fill: Callable[[Path], Any], *,
                ready: Callable[[Path], bool] = Path.exists) -> Path:
    """Make the folder `target` once: `fill` a fresh temp folder beside it, then rename it into place.

    Returns at once when `ready(target)`. Readers never see a half-filled folder because only a
    complete one is ever renamed to `target`. Two processes may fill at the same time: the loser's
    rename fails on the winner's folder, and its own copy is dropped. A `target` that exists but is
    not `ready` was not made here (this helper never leaves one), so it is reported, never deleted or
    written into: it may hold files that are not ours.
    """
    if ready(target):
        return target
    if target.exists():
        raise FileExistsError(f"{target} exists but is incomplete; move it away to have it rebuilt")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        _fsync_tree(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not ready(target):  # not a twin that won the race: something else is in the way
                raise
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temp folder only; gone already after a rename
    return target


def _fsync_tree(root: Path) -> None:
    # Without this a power cut after the rename could leave a complete-looking folder of empty files,
    # which `ready` would then trust for ever.
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(Path(directory))


def remove_stale_temp_files(folder: Path, *, older_than_s: float = 0.0, targets: Container[str] | None = None,
                            now: float | None = None) -> list[Path]:
    """Remove the temp files a killed writer left in the top level of `folder` (never below it, never
    a link or anything not named like ours), optionally only those of `targets` (final file names)
    and only those older than `older_than_s`. A missing or unreadable folder has none. Returns what
    was removed."""
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    removed: list[Path] = []
    for entry in entries:
        target = temp_target(entry.name)
        try:
            if (target is None or (targets is not None and target not in targets)
                    or not entry.is_file(follow_symlinks=False)
                    or now - entry.stat(follow_symlinks=False).st_mtime < older_than_s):
                continue
            os.unlink(entry.path)
        except OSError as exc:
            logger.warning("could not remove a stale temp file", path=entry.path, error=exc.strerror)
            continue
        removed.append(Path(entry.path))
        logger.info("removed a stale temp file", path=entry.path)
    return removed
