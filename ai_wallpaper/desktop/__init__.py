"""Put an image on the desktop: copy it under a new name, detect the desktop, run its setter, prune.

Desktops cache wallpapers by path, so each wallpaper gets a NEW file name (written atomically) and
the previous file stays, so `ai-wallpaper previous` can go back. Files beyond `desktop.keep` are
pruned, but never a favorite, the current one or the previous one.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ai_wallpaper.config.screens import Screen
from ai_wallpaper.config.settings import DesktopSettings
from ai_wallpaper.core import atomic, log
from ai_wallpaper.core.atomic import atomic_path
from ai_wallpaper.core.errors import DesktopError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.desktop import wallpaper_sets
from ai_wallpaper.desktop.detect import detect_desktop, running_processes
from ai_wallpaper.desktop.runner import CommandResult, Runner, run_command
from ai_wallpaper.desktop.setter_context import SetterContext
from ai_wallpaper.desktop.setters import SETTERS

__all__ = ["SETTERS", "CommandResult", "Runner", "WallpaperResult", "apply_wallpaper", "detect_desktop",
           "prune_wallpapers", "run_command", "set_existing_wallpaper"]

logger = log.get(__name__)
WALLPAPER_PREFIX = "wallpaper-"
# The copies this program wrote, one name per line: pruning deletes nothing that is not listed here.
OWNED_LIST = ".ai-wallpaper-owned"
_COPY_NAME = re.compile(re.escape(WALLPAPER_PREFIX) + r"\d{8}-\d{6}-[A-Za-z0-9._-]+\.[A-Za-z0-9]{1,5}")


@dataclass(frozen=True)
class WallpaperResult:
    path: Path
    setter: str | None
    detail: str


def _unique_target(directory: Path, run_id: str, suffix: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe_id = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in run_id)
    suffix = suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,5}", suffix) else ".png"
    target = directory / f"{WALLPAPER_PREFIX}{stamp}-{safe_id}{suffix}"
    n = 1
    while target.exists():
        n += 1
        target = directory / f"{WALLPAPER_PREFIX}{stamp}-{safe_id}-{n}{suffix}"
    return target


def set_existing_wallpaper(path: Path, settings: DesktopSettings, *, runner: Runner = run_command,
                           env: Mapping[str, str] | None = None,
                           which: Callable[[str], str | None] = shutil.which,
                           processes: Callable[[], Collection[str]] = running_processes,
                           ) -> tuple[str | None, str]:
    """Run the configured (or detected) setter on `path`, one of our copies, with the monitors' pictures
    it was set with (its wallpaper set, desktop/wallpaper_sets.py). Returns (setter, detail)."""
    name: str | None = settings.setter
    if name == "none":
        return None, "desktop.setter is 'none': wallpaper not set"
    if name == "auto":
        name = detect_desktop(os.environ if env is None else env, which=which, processes=processes)
        if name is None:
            logger.warning("no desktop detected; wallpaper file written but not set",
                           hint="set desktop.setter in settings.yaml (e.g. gnome, feh, command)")
            return None, "no desktop detected (set desktop.setter to choose one)"
    setter = SETTERS.get(name or "")
    if setter is None or name is None:
        raise DesktopError(f"unknown desktop.setter {name!r}",
                           hint=f"one of: auto, none, {', '.join(SETTERS)}")
    ctx = SetterContext(mode=settings.mode, command=settings.command, runner=runner, which=which,
                        processes=processes, env=env, lock_screen=settings.lock_screen)
    path = Path(path)
    owned = path.name in _owned_names(path.parent)  # our copy: its set's files may be read and written
    if owned:  # the files showing it may make, listed before they exist as every copy
        _remember_owned(path.parent, *(derived.name for derived in wallpaper_sets.derived_paths(path)))
    detail = wallpaper_sets.set_on_desktop(name, path, ctx, settings, owned=owned)
    logger.info("wallpaper set", setter=name, path=str(path), detail=detail)
    return name, f"{name}: {detail}"


def apply_wallpaper(image: Path, settings: DesktopSettings, paths: Paths, *, run_id: str,
                    screens: Sequence[tuple[Screen, Path]] = (),
                    runner: Runner = run_command, env: Mapping[str, str] | None = None,
                    which: Callable[[str], str | None] = shutil.which,
                    processes: Callable[[], Collection[str]] = running_processes) -> WallpaperResult:
    """Copy `image` (and each monitor's picture in `screens`) to new files in paths.wallpapers_dir,
    set them on the desktop, prune old ones."""
    from ai_wallpaper.core.history import History

    image = Path(image)
    for source in (image, *(p for _, p in screens)):
        if not Path(source).is_file():
            raise DesktopError(f"wallpaper image does not exist: {source}")
    target = _unique_target(paths.wallpapers_dir, run_id, image.suffix or ".png")
    written = [target, *wallpaper_sets.member_paths(target, screens)]
    _remember_owned(paths.wallpapers_dir, *(p.name for p in written))  # before they exist: never an unlisted copy
    try:
        with atomic_path(target) as tmp:
            shutil.copyfile(image, tmp)
        if len(screens) > 1:
            wallpaper_sets.write_set(target, screens)
        setter, detail = set_existing_wallpaper(target, settings, runner=runner, env=env, which=which,
                                                processes=processes)
    except BaseException:
        for path in (*written, *wallpaper_sets.derived_paths(target)):
            path.unlink(missing_ok=True)  # our copies, never shown: do not leave them behind
        raise
    history = History(paths.history_db)
    # After this call `target` is current and the history's current one becomes the previous one.
    current = history.current_wallpaper()
    protect = {target, *([current] if current else [])}
    protect |= {Path(p) for p in history.favorite_wallpapers()}
    prune_wallpapers(paths.wallpapers_dir, keep=settings.keep, protect=protect)
    return WallpaperResult(path=target, setter=setter, detail=detail)


def _owned_names(directory: Path) -> list[str]:
    try:
        text = (directory / OWNED_LIST).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [name for name in text.splitlines() if _COPY_NAME.fullmatch(name)]


def _remember_owned(directory: Path, *new: str) -> None:
    names = [*_owned_names(directory), *new]
    atomic.write_text(directory / OWNED_LIST, "".join(f"{n}\n" for n in dict.fromkeys(names)))


def prune_wallpapers(directory: Path, *, keep: int, protect: set[Path]) -> list[Path]:
    """Delete our wallpaper sets beyond the newest `keep`, never one holding a file in `protect`.
    Returns the deleted files.

    Only files this program wrote are candidates: named in OWNED_LIST (written before each copy), with
    our naming pattern, and regular files (not links). Anything else in the folder is never touched.
    A set (desktop/wallpaper_sets.py: the picture, each monitor's, the night one) is kept or deleted whole.
    """
    if not directory.is_dir():
        return []
    owned = _owned_names(directory)
    ours = [p for p in (directory / n for n in owned) if p.is_file() and not p.is_symlink()]
    groups: dict[str, list[Path]] = {}
    for path in ours:
        groups.setdefault(wallpaper_sets.group_key(path.name), []).append(path)
    newest_first = sorted(groups.values(), key=lambda g: max((p.stat().st_mtime, p.name) for p in g), reverse=True)
    protected = {p.resolve() for p in protect}
    deleted = []
    for group in newest_first[keep:]:
        if not any(p.resolve() in protected for p in group):
            for old in group:
                old.unlink(missing_ok=True)
                deleted.append(old)
    gone = {p.name for p in deleted} | {n for n in owned if not (directory / n).exists()}
    if gone:
        atomic.write_text(directory / OWNED_LIST, "".join(f"{n}\n" for n in owned if n not in gone))
    if deleted:
        logger.info("pruned old wallpapers", count=len(deleted), keep=keep)
    return deleted
