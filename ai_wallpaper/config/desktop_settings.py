"""The `desktop:` section: which setter, which monitors, how they are painted, dark style and lock screen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ai_wallpaper.config.schema import KeyPath, option
from ai_wallpaper.config.screens import MAX_MONITORS, MAX_OFFSET, MAX_SIDE, MIN_SIDE, MONITOR_NAME

Check = list[tuple[KeyPath, str] | tuple[KeyPath, str, str]]
# desktop/setters.py has one setter for each name here except auto and none (a test keeps them equal).
DesktopSetter = Literal["auto", "none", "gnome", "kde", "xfce", "cinnamon", "mate", "lxqt", "lxde", "sway",
                        "hyprland", "swww", "feh", "xwallpaper", "macos", "windows", "command"]


@dataclass(frozen=True)
class MonitorSettings:
    name: str = option("", "The connector name as the desktop reports it (xrandr --listmonitors, swaymsg -t "
                           "get_outputs, hyprctl monitors), e.g. DP-1.")
    width: int = option(1920, "Native width in pixels, as shown (a portrait monitor is taller than wide).",
                        min=MIN_SIDE, max=MAX_SIDE)
    height: int = option(1080, "Native height in pixels, as shown.", min=MIN_SIDE, max=MAX_SIDE)
    x: int = option(0, "Left edge on the desktop, in pixels (for a spanning image).", min=-MAX_OFFSET, max=MAX_OFFSET)
    y: int = option(0, "Top edge on the desktop, in pixels.", min=-MAX_OFFSET, max=MAX_OFFSET)

    def check(self) -> Check:
        if MONITOR_NAME.fullmatch(self.name):
            return []
        return [(("name",), f"{self.name[:80]!r} is not a connector name",
                 "letters, digits, '.', '_' and '-', e.g. DP-1 or HDMI-A-1")]


@dataclass(frozen=True)
class DesktopSettings:
    setter: DesktopSetter = option("auto", "Which desktop to set: auto detects it; none only writes the file.")
    command: list[str] = option(factory=list, doc="For setter 'command': argv; '{path}' is replaced by the image path.",
                                example=["my-setter", "--image", "{path}"])
    keep: int = option(10, "How many wallpaper files to keep (favorites are never pruned).", min=1, max=10000)
    mode: Literal["zoom", "fill", "center", "scale", "tile"] = option("zoom", "How the desktop fits the image.")
    notify: bool = option(False, "Show a desktop notification (freedesktop, via notify-send) when a new wallpaper\n"
                          "is set or a run fails.")
    layout: Literal["per-monitor", "span", "single"] = option(
        "per-monitor", "per-monitor: every monitor gets its own cut of the 8K master at its native size, set\n"
        "per monitor where the desktop can (sway, Hyprland, swww, KDE, XFCE, feh, xwallpaper), as one\n"
        "spanning image on GNOME, Cinnamon and MATE, and the largest monitor's cut elsewhere.\n"
        "span: always one image across all monitors. single: one output.width x output.height image.")
    monitors: list[MonitorSettings] | None = option(
        None, "The monitors, first = primary; null = detect them at each run (xrandr, sway, Hyprland, KDE).\n"
        "With none found (no display) a run makes one output.width x output.height image.",
        example=[{"name": "DP-1", "width": 2560, "height": 1440, "x": 0, "y": 0},
                 {"name": "HDMI-A-1", "width": 1080, "height": 1920, "x": 2560, "y": 0}])
    dark: Literal["night", "same", "off"] = option(
        "night", "The dark-style wallpaper (GNOME picture-uri-dark): night = a tone-mapped night version of\n"
        "the same image (no second render); same = the same image; off = leave it alone.")
    lock_screen: bool = option(False, "Also set the lock-screen picture (GNOME screensaver, KDE lock screen).")

    def check(self) -> Check:
        problems: Check = []
        if self.setter == "command" and not self.command:
            problems.append((("command",), "setter 'command' needs a command", "e.g. command: [my-setter, '{path}']"))
        if self.monitors is not None:
            if len(self.monitors) > MAX_MONITORS:
                problems.append((("monitors",), f"at most {MAX_MONITORS} monitors"))
            seen: set[str] = set()
            for i, monitor in enumerate(self.monitors):  # each name's own rule: MonitorSettings.check
                if monitor.name in seen:
                    problems.append((("monitors", i, "name"), f"{monitor.name!r} is listed twice"))
                seen.add(monitor.name)
        return problems
