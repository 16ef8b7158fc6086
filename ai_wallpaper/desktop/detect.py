"""Which desktop are we on? A pure decision tree, table-tested.

Order (first answer wins): the platform (macOS, Windows) → `XDG_CURRENT_DESKTOP` (a colon list,
e.g. "ubuntu:GNOME") → session variables (`DESKTOP_SESSION`, `GDMSESSION`, `KDE_FULL_SESSION`,
`SWAYSOCK`, `HYPRLAND_INSTANCE_SIGNATURE`, …) → running wallpaper daemons and desktop shells →
setter binaries that work on the current display server. No display at all → None (headless).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

# XDG_CURRENT_DESKTOP entries and session names → setter name.
_DESKTOP_NAMES: dict[str, str] = {
    "gnome": "gnome", "gnome-classic": "gnome", "gnome-flashback": "gnome", "unity": "gnome",
    "budgie": "gnome", "budgie-desktop": "gnome", "pantheon": "gnome", "ubuntu": "gnome",
    "kde": "kde", "plasma": "kde", "plasmawayland": "kde", "plasmax11": "kde",
    "xfce": "xfce", "xfce4": "xfce", "xubuntu": "xfce",
    "x-cinnamon": "cinnamon", "cinnamon": "cinnamon", "cinnamon2d": "cinnamon",
    "mate": "mate",
    "lxqt": "lxqt", "lubuntu": "lxqt",
    "lxde": "lxde", "lxde-pi": "lxde",
    "sway": "sway",
    "hyprland": "hyprland",
}
# "ubuntu" is ambiguous as a session name only; in XDG_CURRENT_DESKTOP it precedes GNOME anyway.

# Presence of one of these variables names the desktop.
_SESSION_FLAGS: tuple[tuple[str, str], ...] = (
    ("HYPRLAND_INSTANCE_SIGNATURE", "hyprland"),
    ("SWAYSOCK", "sway"),
    ("KDE_FULL_SESSION", "kde"),
    ("GNOME_DESKTOP_SESSION_ID", "gnome"),
    ("MATE_DESKTOP_SESSION_ID", "mate"),
    ("CINNAMON_VERSION", "cinnamon"),
)

# Running processes → setter. Wallpaper daemons first (they are what actually paints).
_PROCESSES: tuple[tuple[str, str], ...] = (
    ("hyprpaper", "hyprland"),
    ("swww-daemon", "swww"),
    ("awww-daemon", "swww"),
    ("plasmashell", "kde"),
    ("xfdesktop", "xfce"),
    ("gnome-shell", "gnome"),
    ("cinnamon", "cinnamon"),
    ("caja", "mate"),
    ("pcmanfm-qt", "lxqt"),
    ("pcmanfm", "lxde"),
    ("sway", "sway"),
    ("Hyprland", "hyprland"),
)


def running_processes() -> set[str]:
    """Names (comm) of the processes we can see in /proc; empty where /proc does not exist."""
    names: set[str] = set()
    proc = Path("/proc")
    if not proc.is_dir():
        return names
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                names.add((entry / "comm").read_text().strip())
            except OSError:
                continue
    return names


def _from_name(value: str) -> str | None:
    return _DESKTOP_NAMES.get(value.strip().lower())


def detect_desktop(env: Mapping[str, str] | None = None,
                   which: Callable[[str], str | None] = shutil.which,
                   processes: Callable[[], Collection[str]] = running_processes,
                   platform: str = sys.platform) -> str | None:
    """The setter name for this session, or None when no desktop can be found."""
    env = os.environ if env is None else env
    if platform == "darwin":
        return "macos"
    if platform in ("win32", "cygwin"):
        return "windows"
    for part in env.get("XDG_CURRENT_DESKTOP", "").split(":"):
        if part and (found := _from_name(part)):
            return found
    for var in ("XDG_SESSION_DESKTOP", "DESKTOP_SESSION", "GDMSESSION"):
        value = env.get(var, "")
        # DESKTOP_SESSION may be a path like /usr/share/xsessions/plasma.
        if value and (found := _from_name(value.rsplit("/", 1)[-1])):
            return found
    for var, name in _SESSION_FLAGS:
        if env.get(var):
            return name
    wayland = bool(env.get("WAYLAND_DISPLAY"))
    x11 = bool(env.get("DISPLAY"))
    if not (wayland or x11):
        return None  # headless: nothing to set
    running = processes()
    for proc_name, name in _PROCESSES:
        if proc_name in running:
            return name
    if wayland and (which("swww") or which("awww")):
        return "swww"
    if x11:
        for binary in ("feh", "xwallpaper"):
            if which(binary):
                return binary
    return None
