"""The monitor vocabulary shared by the planner, the final stage and the desktop: a monitor's geometry,
and the file-name slug its picture is saved under."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Screen:
    """One monitor a run paints: its name (the connector, e.g. DP-1), its native size as it is shown
    (a portrait monitor is taller than wide) and its place on the desktop (for a spanning image)."""

    name: str
    width: int
    height: int
    x: int = 0
    y: int = 0


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
