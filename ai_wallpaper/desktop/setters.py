"""One setter per desktop. Each builds exact argv lists and runs them through the injected runner.

The modes (desktop.mode) are desktop/setter_context.py's. The daemon's final image already has the
screen's size, so every mode looks the same there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ai_wallpaper.core.errors import DesktopError
from ai_wallpaper.desktop.quoting import hyprpaper_path, sway_path_word
from ai_wallpaper.desktop.setter_context import (
    FEH,
    PCMANFM,
    PCMANFM_QT,
    SWAY,
    SWWW,
    WINDOWS_STYLE,
    XFCE_STYLE,
    XWALLPAPER,
    SetterContext,
    swww_binary,
    xfce_targets,
)
from ai_wallpaper.desktop.setters_gnome_kde import set_cinnamon, set_gnome, set_kde, set_mate


def set_xfce(path: Path, ctx: SetterContext) -> str:
    path = path.absolute()
    targets = xfce_targets(ctx)
    for prefix in targets:
        ctx.run("xfconf-query", "-c", "xfce4-desktop", "-p", f"{prefix}/last-image", "-n", "-t", "string",
                "-s", str(path))
        ctx.run("xfconf-query", "-c", "xfce4-desktop", "-p", f"{prefix}/image-style", "-n", "-t", "int",
                "-s", str(XFCE_STYLE[ctx.mode]))
    return f"xfconf-query on {len(targets)} monitor/workspace propert{'y' if len(targets) == 1 else 'ies'}"


def set_lxqt(path: Path, ctx: SetterContext) -> str:
    ctx.run("pcmanfm-qt", f"--set-wallpaper={path.absolute()}", f"--wallpaper-mode={PCMANFM_QT[ctx.mode]}")
    return "pcmanfm-qt --set-wallpaper"


def set_lxde(path: Path, ctx: SetterContext) -> str:
    ctx.run("pcmanfm", f"--set-wallpaper={path.absolute()}", f"--wallpaper-mode={PCMANFM[ctx.mode]}")
    return "pcmanfm --set-wallpaper"


def set_swww(path: Path, ctx: SetterContext) -> str:
    binary = swww_binary(ctx) or ("awww" if ctx.which("awww") else "swww")
    # The path is its own argv entry: no shell, and swww's parser (clap) only checks that it exists.
    # Absolute, so it never starts with '-' (an option) nor is the bare '-' (read stdin).
    ctx.run(binary, "img", str(path.absolute()), "--resize", SWWW[ctx.mode])
    return f"{binary} img"


def set_sway(path: Path, ctx: SetterContext) -> str:
    if swww_binary(ctx):
        return set_swww(path, ctx)
    # swaymsg sends ONE command string, which sway splits, unquotes and then expands with wordexp
    # (command substitution included): sway_path_word spells the path so it arrives literally.
    ctx.run("swaymsg", f"output * bg {sway_path_word(path.absolute())} {SWAY[ctx.mode]}")
    return "swaymsg output * bg"


def set_hyprland(path: Path, ctx: SetterContext) -> str:
    if swww_binary(ctx):
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
    ctx.run("feh", "--no-fehbg", FEH[ctx.mode], str(path.absolute()))  # absolute: never an option
    return "feh"


def set_xwallpaper(path: Path, ctx: SetterContext) -> str:
    ctx.run("xwallpaper", XWALLPAPER[ctx.mode], str(path.absolute()))
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
    style, tile = WINDOWS_STYLE[mode]
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
