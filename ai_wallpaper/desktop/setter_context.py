"""What every setter shares: the context it runs commands through, each desktop's words for the five
desktop.mode values, and the lookups more than one setter needs (which swww client, XFCE's backdrops).

Modes (desktop.mode): zoom = scale to cover the screen and crop; fill = stretch to the screen
(may distort); scale = fit inside the screen (may letterbox); center = no scaling; tile = repeat.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ai_wallpaper.desktop.detect import running_processes
from ai_wallpaper.desktop.runner import Runner, run_command

MODES = ("zoom", "fill", "scale", "center", "tile")
GNOME_OPTIONS = {"zoom": "zoom", "fill": "stretched", "scale": "scaled", "center": "centered",
                  "tile": "wallpaper"}
KDE_FILL = {"zoom": 2, "fill": 0, "scale": 1, "center": 6, "tile": 3}  # Qt Image.FillMode values
XFCE_STYLE = {"zoom": 5, "fill": 3, "scale": 4, "center": 1, "tile": 2}
PCMANFM_QT = {"zoom": "zoom", "fill": "stretch", "scale": "fit", "center": "center", "tile": "tile"}
PCMANFM = {"zoom": "crop", "fill": "stretch", "scale": "fit", "center": "center", "tile": "tile"}
SWAY = {"zoom": "fill", "fill": "stretch", "scale": "fit", "center": "center", "tile": "tile"}
SWWW = {"zoom": "crop", "fill": "stretch", "scale": "fit", "center": "no", "tile": "no"}
FEH = {"zoom": "--bg-fill", "fill": "--bg-scale", "scale": "--bg-max", "center": "--bg-center",
        "tile": "--bg-tile"}
XWALLPAPER = {"zoom": "--zoom", "fill": "--stretch", "scale": "--maximize", "center": "--center",
               "tile": "--tile"}
WINDOWS_STYLE = {"zoom": ("10", "0"), "fill": ("2", "0"), "scale": ("6", "0"), "center": ("0", "0"),
                  "tile": ("0", "1")}  # (WallpaperStyle, TileWallpaper)


@dataclass
class SetterContext:
    mode: str = "zoom"
    span: bool = False  # the picture spans all monitors (GNOME, Cinnamon, MATE: picture-options spanned)
    dark: Path | None = None  # the dark-style picture (desktop/night.py); None = leave the dark key alone
    lock_screen: bool = False  # also set the lock screen's picture where the desktop has one
    command: Sequence[str] = ()
    runner: Runner = run_command
    which: Callable[[str], str | None] = shutil.which
    processes: Callable[[], Collection[str]] = running_processes
    env: Mapping[str, str] | None = None
    _procs: Collection[str] | None = field(default=None, repr=False)

    def run(self, *argv: str, check: bool = True, extra_env: Mapping[str, str] | None = None) -> str:
        env = self.env
        if extra_env:
            env = {**(os.environ if env is None else env), **extra_env}
        return self.runner(list(argv), check=check, env=env).stdout

    def running(self, name: str) -> bool:
        if self._procs is None:
            self._procs = self.processes()
        return name in self._procs


def xfce_targets(ctx: SetterContext) -> list[str]:
    """Every backdrop/screenN/monitorM/workspaceK prefix: existing ones, plus the active monitors ×
    workspaces (created if absent, e.g. a new monitor or a fresh profile)."""
    listing = ctx.run("xfconf-query", "-c", "xfce4-desktop", "-l", check=False)
    prefixes = {line.rsplit("/", 1)[0] for line in listing.split()
                if line.startswith("/backdrop/") and line.endswith(("/last-image", "/image-style"))
                and "/workspace" in line}
    monitors = []
    if ctx.which("xrandr"):
        for line in ctx.run("xrandr", "--listactivemonitors", check=False).splitlines()[1:]:
            if line.split():
                monitors.append(line.split()[-1])
    count_text = ctx.run("xfconf-query", "-c", "xfwm4", "-p", "/general/workspace_count", check=False).strip()
    workspaces = int(count_text) if count_text.isdigit() else 1
    for monitor in monitors:
        for ws in range(workspaces):
            prefixes.add(f"/backdrop/screen0/monitor{monitor}/workspace{ws}")
    if not prefixes:
        prefixes.add("/backdrop/screen0/monitor0/workspace0")
    return sorted(prefixes)


def swww_binary(ctx: SetterContext) -> str | None:
    for name in ("awww", "swww"):  # swww was renamed awww; either client talks to its daemon
        if ctx.running(f"{name}-daemon") and ctx.which(name):
            return name
    return None
