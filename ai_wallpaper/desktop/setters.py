"""One setter per desktop. Each builds exact argv lists and runs them through the injected runner.

Modes (desktop.mode): zoom = scale to cover the screen and crop; fill = stretch to the screen
(may distort); scale = fit inside the screen (may letterbox); center = no scaling; tile = repeat.
The daemon's final image already has the screen's size, so every mode looks the same there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ai_wallpaper.core.errors import DesktopError
from ai_wallpaper.desktop.detect import running_processes
from ai_wallpaper.desktop.quoting import hyprpaper_path, sway_path_word
from ai_wallpaper.desktop.runner import Runner, run_command

MODES = ("zoom", "fill", "scale", "center", "tile")
_GNOME_OPTIONS = {"zoom": "zoom", "fill": "stretched", "scale": "scaled", "center": "centered",
                  "tile": "wallpaper"}
_KDE_FILL = {"zoom": 2, "fill": 0, "scale": 1, "center": 6, "tile": 3}  # Qt Image.FillMode values
_XFCE_STYLE = {"zoom": 5, "fill": 3, "scale": 4, "center": 1, "tile": 2}
_PCMANFM_QT = {"zoom": "zoom", "fill": "stretch", "scale": "fit", "center": "center", "tile": "tile"}
_PCMANFM = {"zoom": "crop", "fill": "stretch", "scale": "fit", "center": "center", "tile": "tile"}
_SWAY = {"zoom": "fill", "fill": "stretch", "scale": "fit", "center": "center", "tile": "tile"}
_SWWW = {"zoom": "crop", "fill": "stretch", "scale": "fit", "center": "no", "tile": "no"}
_FEH = {"zoom": "--bg-fill", "fill": "--bg-scale", "scale": "--bg-max", "center": "--bg-center",
        "tile": "--bg-tile"}
_XWALLPAPER = {"zoom": "--zoom", "fill": "--stretch", "scale": "--maximize", "center": "--center",
               "tile": "--tile"}
_WINDOWS_STYLE = {"zoom": ("10", "0"), "fill": ("2", "0"), "scale": ("6", "0"), "center": ("0", "0"),
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


def _xfce_targets(ctx: SetterContext) -> list[str]:
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


def set_xfce(path: Path, ctx: SetterContext) -> str:
    path = path.absolute()
    targets = _xfce_targets(ctx)
    for prefix in targets:
        ctx.run("xfconf-query", "-c", "xfce4-desktop", "-p", f"{prefix}/last-image", "-n", "-t", "string",
                "-s", str(path))
        ctx.run("xfconf-query", "-c", "xfce4-desktop", "-p", f"{prefix}/image-style", "-n", "-t", "int",
                "-s", str(_XFCE_STYLE[ctx.mode]))
    return f"xfconf-query on {len(targets)} monitor/workspace propert{'y' if len(targets) == 1 else 'ies'}"


def set_lxqt(path: Path, ctx: SetterContext) -> str:
    ctx.run("pcmanfm-qt", f"--set-wallpaper={path.absolute()}", f"--wallpaper-mode={_PCMANFM_QT[ctx.mode]}")
    return "pcmanfm-qt --set-wallpaper"


def set_lxde(path: Path, ctx: SetterContext) -> str:
    ctx.run("pcmanfm", f"--set-wallpaper={path.absolute()}", f"--wallpaper-mode={_PCMANFM[ctx.mode]}")
    return "pcmanfm --set-wallpaper"


def _swww_binary(ctx: SetterContext) -> str | None:
    for name in ("awww", "swww"):  # swww was renamed awww; either client talks to its daemon
        if ctx.running(f"{name}-daemon") and ctx.which(name):
            return name
    return None


def set_swww(path: Path, ctx: SetterContext) -> str:
    binary = _swww_binary(ctx) or ("awww" if ctx.which("awww") else "swww")
    # The path is its own argv entry: no shell, and swww's parser (clap) only checks that it exists.
    # Absolute, so it never starts with '-' (an option) nor is the bare '-' (read stdin).
    ctx.run(binary, "img", str(path.absolute()), "--resize", _SWWW[ctx.mode])
    return f"{binary} img"


def set_sway(path: Path, ctx: SetterContext) -> str:
    if _swww_binary(ctx):
        return set_swww(path, ctx)
    # swaymsg sends ONE command string, which sway splits, unquotes and then expands with wordexp
    # (command substitution included): sway_path_word spells the path so it arrives literally.
    ctx.run("swaymsg", f"output * bg {sway_path_word(path.absolute())} {_SWAY[ctx.mode]}")
    return "swaymsg output * bg"


def set_hyprland(path: Path, ctx: SetterContext) -> str:
    if _swww_binary(ctx):
        return set_swww(path, ctx)
    if not ctx.running("hyprpaper"):
        raise DesktopError("Hyprland: no wallpaper daemon running (hyprpaper, swww-daemon or awww-daemon)",
                           hint="start one from hyprland.conf (exec-once = hyprpaper), or set desktop.setter")
    target = hyprpaper_path(path.absolute())  # refuses what hyprctl/hyprpaper would re-parse
    # hyprpaper <= 0.7 needs `preload` first; hyprctl >= 0.53 (hyprpaper >= 0.8) has no `preload`
    # and exits 1 on it, which is harmless: its `wallpaper` loads the file itself.
    ctx.run("hyprctl", "hyprpaper", "preload", target, check=False)
    reply = ctx.run("hyprctl", "hyprpaper", "wallpaper", f",{target}").strip()  # empty monitor = all
    # hyprctl < 0.53 exits 0 even when hyprpaper refused: its reply ("ok" or the error) is the status.
    if reply and reply.lower() != "ok" and any(w in reply.lower() for w in ("fail", "error", "invalid")):
        raise DesktopError(f"hyprpaper did not set the wallpaper: {reply}",
                           hint="see hyprpaper's message; desktop.setter in settings.yaml picks another")
    ctx.run("hyprctl", "hyprpaper", "unload", "unused", check=False)  # free the old image's memory
    return "hyprctl hyprpaper"


def set_feh(path: Path, ctx: SetterContext) -> str:
    ctx.run("feh", "--no-fehbg", _FEH[ctx.mode], str(path.absolute()))  # absolute: never an option
    return "feh"


def set_xwallpaper(path: Path, ctx: SetterContext) -> str:
    ctx.run("xwallpaper", _XWALLPAPER[ctx.mode], str(path.absolute()))
    return "xwallpaper"


# The script is constant; the path is the run handler's argument (osascript passes every argument
# after the -e lines to `on run argv`), so it is never AppleScript source text.
MACOS_SCRIPT = ("on run argv",
                "set imagePath to item 1 of argv",
                'tell application "System Events" to tell every desktop to set picture to imagePath',
                "end run")


def set_macos(path: Path, ctx: SetterContext) -> str:
    lines = [arg for line in MACOS_SCRIPT for arg in ("-e", line)]
    ctx.run("osascript", *lines, str(path.absolute()))  # absolute: never mistaken for an option
    return "osascript System Events"


# The PowerShell script is constant text; the path reaches it in an environment variable of the child.
# Why not an argument: after -Command, PowerShell joins all remaining arguments into the script text
# (so the path would be parsed as code again); -File needs a script file; -EncodedCommand is script text
# too. An environment value is data only: `$env:NAME` evaluates to the string, never parsed as code,
# and the environment block carries any path (no quoting layer at all, unlike the command line).
WINDOWS_IMAGE_VAR = "AI_WALLPAPER_IMAGE"


def windows_script(mode: str) -> str:
    style, tile = _WINDOWS_STYLE[mode]
    return (
        "$ErrorActionPreference = 'Stop'; "
        f"$image = $env:{WINDOWS_IMAGE_VAR}; "
        f"if (-not $image) {{ throw '{WINDOWS_IMAGE_VAR} is not set' }}; "
        f"Set-ItemProperty -Path 'HKCU:\\Control Panel\\Desktop' -Name WallpaperStyle -Value '{style}'; "
        f"Set-ItemProperty -Path 'HKCU:\\Control Panel\\Desktop' -Name TileWallpaper -Value '{tile}'; "
        "Add-Type -TypeDefinition 'using System.Runtime.InteropServices; public class AiWallpaper { "
        "[DllImport(\"user32.dll\", CharSet = CharSet.Unicode, SetLastError = true)] "
        "public static extern bool SystemParametersInfo(int a, int b, string c, int d); }'; "
        # SPI_SETDESKWALLPAPER = 20; SPIF_UPDATEINIFILE | SPIF_SENDCHANGE = 3
        "if (-not [AiWallpaper]::SystemParametersInfo(20, 0, $image, 3)) "
        "{ throw ('SystemParametersInfo failed: ' + [Runtime.InteropServices.Marshal]::GetLastWin32Error()) }"
    )


def set_windows(path: Path, ctx: SetterContext) -> str:
    ctx.run("powershell", "-NoProfile", "-NonInteractive", "-Command", windows_script(ctx.mode),
            extra_env={WINDOWS_IMAGE_VAR: str(path)})
    return "powershell SystemParametersInfo"


def set_command(path: Path, ctx: SetterContext) -> str:
    if not ctx.command:
        raise DesktopError("desktop.setter is 'command' but desktop.command is empty",
                           hint='set desktop.command, e.g. ["my-setter", "--image", "{path}"]')
    argv = [part.replace("{path}", str(path)).replace("{uri}", path.as_uri()) for part in ctx.command]
    ctx.run(*argv)
    return f"command {argv[0]}"


from ai_wallpaper.desktop.setters_gnome_kde import set_cinnamon, set_gnome, set_kde, set_mate  # noqa: E402

SETTERS: dict[str, Callable[[Path, SetterContext], str]] = {
    "gnome": set_gnome,
    "kde": set_kde,
    "xfce": set_xfce,
    "cinnamon": set_cinnamon,
    "mate": set_mate,
    "lxqt": set_lxqt,
    "lxde": set_lxde,
    "sway": set_sway,
    "hyprland": set_hyprland,
    "swww": set_swww,
    "feh": set_feh,
    "xwallpaper": set_xwallpaper,
    "macos": set_macos,
    "windows": set_windows,
    "command": set_command,
}
