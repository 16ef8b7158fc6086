"""The monitor vocabulary shared by the settings, the planner, the final stage, run records and the
desktop: a monitor's geometry, the rules a monitor must meet wherever one comes from (desktop.monitors,
a desktop tool's answer, run.json, a wallpaper set file), and the file-name slug its picture is saved under."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_SLUG = re.compile(r"[^a-z0-9]+")
# A monitor name reaches setter commands (sway's command parser, hyprctl's "NAME,PATH", xfconf property
# paths): connector names only, never quoting, spaces, commas or shell characters.
MONITOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_MONITORS = 16
MIN_SIDE, MAX_SIDE = 64, 16384  # output.width/height's bounds: a monitor's picture is a final image
MAX_OFFSET = 65536  # a monitor's place on the desktop, either way


@dataclass(frozen=True)
class Screen:
    """One monitor a run paints: its name (the connector, e.g. DP-1), its native size as it is shown
    (a portrait monitor is taller than wide) and its place on the desktop (for a spanning image)."""

    name: str
    width: int
    height: int
    x: int = 0
    y: int = 0


def screen_problem(name: object, width: object, height: object, x: object, y: object) -> str | None:
    """Why these values are not a monitor (name, size in pixels, place), or None when they are one."""
    if not (isinstance(name, str) and MONITOR_NAME.fullmatch(name)):
        return f"{str(name)[:80]!r} is not a connector name"
    sides, offsets = (width, height), (x, y)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (*sides, *offsets)):
        return "its size and place must be whole numbers"
    if not all(MIN_SIDE <= v <= MAX_SIDE for v in sides):  # type: ignore[operator]
        return f"its size must be {MIN_SIDE}..{MAX_SIDE} pixels a side"
    if not all(abs(v) <= MAX_OFFSET for v in offsets):  # type: ignore[arg-type]
        return f"its place must be within {MAX_OFFSET} pixels of the origin"
    return None


def screen_slugs(screens: Sequence[Screen]) -> list[str]:
    """One file-name-safe, unique slug per screen, in order: 'DP-1' -> 'dp-1', a clash gets '-2'."""
    slugs: list[str] = []
    for i, screen in enumerate(screens):
        slug = _SLUG.sub("-", screen.name.lower()).strip("-")[:40] or f"screen{i + 1}"
        if slug == "4k":  # 05_final_4k.png is the single-image file: never overwrite it
            slug = "4k-screen"
        base, n = slug, 1
        while slug in slugs:
            n += 1
            slug = f"{base}-{n}"
        slugs.append(slug)
    return slugs
