"""Put an image on the desktop: copy it under a new name, detect the desktop, run its setter, prune.

Desktops cache wallpapers by path, so each wallpaper gets a NEW file name (written atomically) and
the previous file stays, so `ai-wallpaper previous` can go back. Files beyond `desktop.keep` are
pruned, but never a favorite, the current one or the previous one.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from ai_wallpaper import log
from ai_wallpaper.atomic import atomic_path
from ai_wallpaper.desktop.detect import detect_desktop, running_processes
from ai_wallpaper.desktop.runner import CommandResult, Runner, run_command
from ai_wallpaper.desktop.setters import SETTERS, SetterContext
from ai_wallpaper.errors import DesktopError
from ai_wallpaper.paths import Paths
from ai_wallpaper.settings import DesktopSettings

__all__ = ["SETTERS", "CommandResult", "Runner", "WallpaperResult", "apply_wallpaper", "detect_desktop",
           "prune_wallpapers", "run_command", "set_existing_wallpaper"]

logger = log.get(__name__)
WALLPAPER_PREFIX = "wallpaper-"


@dataclass(frozen=True)
class WallpaperResult:
    path: Path
    setter: str | None
    detail: str


def _unique_target(directory: Path, run_id: str, suffix: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
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
    """Run the configured (or detected) setter on `path` as is. Returns (setter, detail)."""
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
    if setter is None:
        raise DesktopError(f"unknown desktop.setter {name!r}",
                           hint=f"one of: auto, none, {', '.join(SETTERS)}")
    ctx = SetterContext(mode=settings.mode, command=settings.command, runner=runner, which=which,
                        processes=processes, env=env)
    detail = setter(path, ctx)
    logger.info("wallpaper set", setter=name, path=str(path), detail=detail)
    return name, f"{name}: {detail}"


def apply_wallpaper(image: Path, settings: DesktopSettings, paths: Paths, *, run_id: str,
                    runner: Runner = run_command, env: Mapping[str, str] | None = None,
                    which: Callable[[str], str | None] = shutil.which,
                    processes: Callable[[], Collection[str]] = running_processes) -> WallpaperResult:
    """Copy `image` to a new file in paths.wallpapers_dir, set it on the desktop, prune old ones."""
    from ai_wallpaper.history import History

    image = Path(image)
    if not image.is_file():
        raise DesktopError(f"wallpaper image does not exist: {image}")
    target = _unique_target(paths.wallpapers_dir, run_id, image.suffix or ".png")
    with atomic_path(target) as tmp:
        shutil.copyfile(image, tmp)
    setter, detail = set_existing_wallpaper(target, settings, runner=runner, env=env, which=which,
                                            processes=processes)
    history = History(paths.history_db)
    # After this call `target` is current and the history's current one becomes the previous one.
    current = history.current_wallpaper()
    protect = {target, *([current] if current else [])}
    protect |= {Path(p) for p in history.favorite_wallpapers()}
    prune_wallpapers(paths.wallpapers_dir, keep=settings.keep, protect=protect)
    return WallpaperResult(path=target, setter=setter, detail=detail)


def prune_wallpapers(directory: Path, *, keep: int, protect: set[Path]) -> list[Path]:
    """Delete our wallpaper files beyond the newest `keep`, never one in `protect`. Returns the deleted."""
    if not directory.is_dir():
        return []
    ours = sorted((p for p in directory.iterdir() if p.is_file() and p.name.startswith(WALLPAPER_PREFIX)),
                  key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    protected = {p.resolve() for p in protect}
    deleted = []
    for old in ours[keep:]:
        if old.resolve() not in protected:
            old.unlink(missing_ok=True)
            deleted.append(old)
    if deleted:
        logger.info("pruned old wallpapers", count=len(deleted), keep=keep)
    return deleted
