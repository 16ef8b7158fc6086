"""Which monitors are there: desktop.monitors if the user listed them, else ask the desktop.

Sources, by desktop: sway (`swaymsg -t get_outputs -r`), Hyprland (`hyprctl monitors -j`), KDE
(`kscreen-doctor -j`), and on X11 (also XWayland under GNOME) `xrandr --listmonitors`, whose
monitors are what RandR 1.5 and Xinerama clients such as feh see. Each reports the size as shown
(a rotated monitor is taller than wide) and the place on the desktop. Tool output is untrusted:
a monitor with an odd name or size is left out with a warning, garbage yields no monitors, and no
monitors means one image of output.width x output.height.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ai_wallpaper.config.desktop_settings import DesktopSettings
from ai_wallpaper.config.screens import MAX_MONITORS, Screen, screen_problem
from ai_wallpaper.core import log
from ai_wallpaper.core.untrusted_input import loads_json
from ai_wallpaper.desktop.runner import Runner, run_command

logger = log.get(__name__)
_XRANDR = re.compile(r"^\s*\d+:\s+([+*]*)(\S+)\s+(\d+)/\d+x(\d+)/\d+([+-]\d+)([+-]\d+)")


def _screen(name: Any, width: Any, height: Any, x: Any = 0, y: Any = 0) -> Screen | None:
    if problem := screen_problem(name, width, height, x, y):
        logger.warning("monitor left out of the desktop's answer", name=str(name)[:80], problem=problem)
        return None
    return Screen(name, width, height, x, y)


def parse_xrandr(text: str) -> list[Screen]:
    """`xrandr --listmonitors`: ` 0: +*DP-1 2560/597x1440/336+0+0  DP-1`; '*' marks the primary."""
    # Kept in the server's order (the primary first): Xinerama numbers its heads the same way, and feh
    # hands its images to the heads in that order.
    out = []
    for line in text.splitlines():
        m = _XRANDR.match(line)
        if m and (screen := _screen(m[2], int(m[3]), int(m[4]), int(m[5]), int(m[6]))):
            out.append(screen)
    return out


def parse_sway(text: str) -> list[Screen]:
    """`swaymsg -t get_outputs -r`: native mode size, swapped when turned 90/270; place from rect."""
    out = []
    for o in _json_list(text):
        mode, rect = o.get("current_mode"), o.get("rect")
        if not (o.get("active") and isinstance(mode, dict) and isinstance(rect, dict)):
            continue
        w, h = mode.get("width"), mode.get("height")
        if str(o.get("transform", "normal")).endswith(("90", "270")):
            w, h = h, w
        if screen := _screen(o.get("name"), w, h, rect.get("x", 0), rect.get("y", 0)):
            out.append(screen)
    return out


def parse_hyprland(text: str) -> list[Screen]:
    """`hyprctl monitors -j`: width/height are the mode's pixels; odd transforms (1, 3, 5, 7) are turned."""
    out = []
    for o in _json_list(text):
        if o.get("disabled"):
            continue
        w, h = o.get("width"), o.get("height")
        if isinstance(o.get("transform"), int) and o["transform"] % 2 == 1:
            w, h = h, w
        if screen := _screen(o.get("name"), w, h, o.get("x", 0), o.get("y", 0)):
            out.append(screen)
    return out


def parse_kscreen(text: str) -> list[Screen]:
    """`kscreen-doctor -j`: the current mode's size, swapped for rotation Left (2) or Right (8)."""
    data = _json(text)
    outputs = data.get("outputs") if isinstance(data, dict) else None
    out = []
    for o in outputs if isinstance(outputs, list) else []:
        if not (isinstance(o, dict) and o.get("enabled") and o.get("connected")):
            continue
        modes = {str(m.get("id")): m.get("size") for m in o.get("modes") or [] if isinstance(m, dict)}
        size, pos = modes.get(str(o.get("currentModeId"))), o.get("pos")
        if not (isinstance(size, dict) and isinstance(pos, dict)):
            continue
        w, h = size.get("width"), size.get("height")
        if o.get("rotation") in (2, 8):
            w, h = h, w
        if screen := _screen(o.get("name"), w, h, pos.get("x", 0), pos.get("y", 0)):
            out.append(screen)
    return out


def _json(text: str) -> Any:
    """Parsed JSON, or None for garbage (deep nesting included)."""
    try:
        return loads_json(text[:4_000_000])
    except ValueError:
        return None


def _json_list(text: str) -> list[dict[str, Any]]:
    data = _json(text)
    return [o for o in data if isinstance(o, dict)] if isinstance(data, list) else []


# desktop (desktop/detect.py's name) -> (argv, parser); X11 desktops fall back to xrandr.
_SOURCES: dict[str, tuple[tuple[str, ...], Callable[[str], list[Screen]]]] = {
    "sway": (("swaymsg", "-t", "get_outputs", "-r"), parse_sway),
    "hyprland": (("hyprctl", "monitors", "-j"), parse_hyprland),
    "kde": (("kscreen-doctor", "-j"), parse_kscreen),
}
_XRANDR_ARGV = ("xrandr", "--listmonitors")


def detect_monitors(desktop: str | None, env: Mapping[str, str], *, runner: Runner = run_command,
                    which: Callable[[str], str | None]) -> list[Screen]:
    """Ask the desktop; [] when it cannot tell (no display, no tool, garbage)."""
    tries: list[tuple[tuple[str, ...], Callable[[str], list[Screen]]]] = []
    if desktop in _SOURCES:
        tries.append(_SOURCES[desktop])
    if env.get("DISPLAY"):
        tries.append((_XRANDR_ARGV, parse_xrandr))
    for argv, parse in tries:
        if not which(argv[0]):
            continue
        result = runner(list(argv), check=False, env=env)
        screens = parse(result.stdout) if result.returncode == 0 else []
        if screens:
            return _unique(screens)[:MAX_MONITORS]
        logger.info("no monitors in the answer", command=" ".join(argv), exit=result.returncode)
    return []


def _unique(screens: Sequence[Screen]) -> list[Screen]:
    seen: set[str] = set()
    return [s for s in screens if not (s.name in seen or seen.add(s.name))]  # type: ignore[func-returns-value]


def configured_monitors(settings: DesktopSettings) -> list[Screen] | None:
    """desktop.monitors as screens; None when it is null (detect)."""
    if settings.monitors is None:
        return None
    return [Screen(m.name, m.width, m.height, m.x, m.y) for m in settings.monitors]


def span_screen(screens: Sequence[Screen]) -> Screen:
    """One screen covering every monitor's rectangle: the canvas of a spanning wallpaper."""
    left, top = min(s.x for s in screens), min(s.y for s in screens)
    right, bottom = max(s.x + s.width for s in screens), max(s.y + s.height for s in screens)
    return Screen("span", right - left, bottom - top, left, top)


def screens_for_plan(settings: DesktopSettings, env: Mapping[str, str], *, which: Callable[[str], str | None],
                     processes: Callable[[], Any], runner: Runner = run_command) -> tuple[Screen, ...]:
    """The monitors a run cuts pictures for: () for one output.width x output.height image."""
    from ai_wallpaper.desktop.detect import detect_desktop

    if settings.layout == "single":
        return ()
    screens = configured_monitors(settings)
    if screens is None:
        if settings.setter == "none":
            return ()  # nothing will be set: no reason to ask the desktop
        desktop = settings.setter if settings.setter != "auto" else detect_desktop(env, which=which,
                                                                                   processes=processes)
        screens = detect_monitors(desktop, env, runner=runner, which=which)
    if settings.layout == "span" and len(screens) > 1:
        return (span_screen(screens),)
    return tuple(screens)
