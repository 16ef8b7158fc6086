"""A wallpaper set: our copy of the run's picture plus the files that go with it in the wallpapers folder.

    wallpaper-<stamp>-<run>.png           the picture that stands for the run (the first monitor's)
    wallpaper-<stamp>-<run>--<slug>.png   each monitor's own picture (desktop.layout per-monitor)
    wallpaper-<stamp>-<run>.screens.json  which monitor shows which of them, and where it sits
    wallpaper-<stamp>-<run>--span.png     all of them on one canvas, for desktops that span one picture
    wallpaper-<stamp>-<run>--night.png    the dark-style picture (desktop/night.py)

The set is kept and pruned as one (desktop/__init__.py), and `previous`/`forward` set it again whole,
so a monitor never shows another run's picture. The set file is read as untrusted: only plain file
names of this set, in this folder, are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ai_wallpaper.config.desktop_settings import DesktopSettings
from ai_wallpaper.config.screens import MAX_MONITORS, Screen, screen_problem, screen_slugs
from ai_wallpaper.core import atomic, log
from ai_wallpaper.core.atomic import atomic_path
from ai_wallpaper.core.untrusted_input import read_small_json
from ai_wallpaper.desktop.per_monitor import PER_MONITOR, SPANNING, compose_span
from ai_wallpaper.desktop.setter_context import SetterContext
from ai_wallpaper.desktop.setters import SETTERS

logger = log.get(__name__)
SET_SUFFIX = ".screens.json"
_MAX_SET_BYTES = 64 * 1024  # MAX_MONITORS entries take about 2 KiB


def group_key(name: str) -> str:
    """The set a file name belongs to: its name without extension, set suffix or `--member`."""
    stem = name.removesuffix(SET_SUFFIX) if name.endswith(SET_SUFFIX) else name.rsplit(".", 1)[0]
    return stem.split("--", 1)[0]


def _stem(target: Path) -> str:
    return target.name.rsplit(".", 1)[0]


def member_paths(target: Path, screens: Sequence[tuple[Screen, Path]]) -> list[Path]:
    """The files apply_wallpaper writes besides `target` for these monitors (none for one monitor)."""
    if len(screens) <= 1:
        return []
    stem = _stem(target)
    slugs = screen_slugs([s for s, _ in screens])
    return [*(target.with_name(f"{stem}--{slug}.png") for slug in slugs), target.with_name(stem + SET_SUFFIX)]


def derived_paths(target: Path) -> list[Path]:
    """The files made when the set is shown: the spanning canvas and the night picture."""
    stem = _stem(target)
    return [target.with_name(f"{stem}--span.png"), target.with_name(f"{stem}--night.png")]


def write_set(target: Path, screens: Sequence[tuple[Screen, Path]]) -> None:
    import shutil

    members = member_paths(target, screens)
    entries = []
    for (screen, source), copy in zip(screens, members, strict=False):
        with atomic_path(copy) as tmp:
            shutil.copyfile(source, tmp)
        entries.append({"name": screen.name, "width": screen.width, "height": screen.height, "x": screen.x,
                        "y": screen.y, "file": copy.name})
    atomic.write_json(members[-1], {"screens": entries})


def read_set(target: Path) -> list[tuple[Screen, Path]]:
    """The monitors' pictures of `target`'s set; [] for a single picture or a set file that is not ours."""
    file = target.with_name(_stem(target) + SET_SUFFIX)
    try:
        data: Any = read_small_json(file, _MAX_SET_BYTES)
        if data is None:
            return []
        entries = data["screens"]
        placed = []
        for e in entries[:MAX_MONITORS]:
            name, member = e["name"], e["file"]
            values = [e[k] for k in ("width", "height", "x", "y")]
            if problem := screen_problem(name, *values):
                raise ValueError(f"odd monitor: {problem}")
            if not (isinstance(member, str) and group_key(member) == group_key(target.name)
                    and "/" not in member and "\\" not in member):
                raise ValueError(f"{str(member)[:120]!r} is not a file of this set")
            path = target.with_name(member)
            if not path.is_file() or path.is_symlink():
                raise ValueError(f"{member} is missing")
            placed.append((Screen(name, *values), path))
        return placed
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("wallpaper set file ignored; showing the one picture on every monitor",
                       file=str(file), error=str(exc)[:200])
        return []


# The setters that show a separate dark-style picture (desktop/setters_gnome_kde.py).
DARK_STYLE = frozenset({"gnome"})


def _night(setter: str, target: Path, picture: Path, settings: DesktopSettings, owned: bool) -> Path | None:
    """The dark-style picture for `picture` (the set's picture or its spanning canvas): the set's own
    `--night.png`, which desktop/__init__.py listed as ours before it is written."""
    if settings.dark == "off" or setter not in DARK_STYLE:
        return None
    night = derived_paths(target)[1]
    if settings.dark == "same" or not owned:
        return picture  # never write next to a file that is not ours
    if not night.is_file():
        from PIL import Image

        from ai_wallpaper.desktop.night import night_variant

        with Image.open(picture) as img:
            dark = night_variant(img)
        with atomic_path(night) as tmp:
            dark.save(tmp, format="PNG", compress_level=1)
    return night


def set_on_desktop(setter: str, target: Path, ctx: SetterContext, settings: DesktopSettings,
                   owned: bool = True) -> str:
    """Show `target`'s set with `setter`: per monitor where it can, one spanning canvas on the GNOME
    family, else the largest monitor's picture everywhere. owned: `target` is our copy (its set may be
    read and the derived files written)."""
    placed = read_set(target) if owned else []
    picture = target
    if len(placed) > 1 and setter in PER_MONITOR:
        ctx.dark = _night(setter, target, target, settings, owned)
        return PER_MONITOR[setter](placed, ctx)
    if len(placed) > 1 and setter in SPANNING:
        picture = derived_paths(target)[0]
        if not picture.is_file():
            with atomic_path(picture) as tmp:
                compose_span(placed, tmp)
        ctx.span = True
    elif len(placed) > 1:  # one picture for all: the largest monitor's, which most of the desk shows
        picture = max(placed, key=lambda item: item[0].width * item[0].height)[1]
        logger.info("this desktop takes one picture for all monitors: showing the largest monitor's",
                    setter=setter, picture=picture.name)
    ctx.dark = _night(setter, target, picture, settings, owned)
    return SETTERS[setter](picture, ctx)
