"""One setter per desktop. Each builds exact argv lists and runs them through the injected runner.

Modes (desktop.mode): zoom = scale to cover the screen and crop; fill = stretch to the screen
(may distort); scale = fit inside the screen (may letterbox); center = no scaling; tile = repeat.
The daemon's final image already has the screen's size, so every mode looks the same there.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ai_wallpaper.desktop.detect import running_processes
from ai_wallpaper.desktop.runner import Runner, run_command
from ai_wallpaper.errors import DesktopError

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
    command: Sequence[str] = ()
    runner: Runner = run_command
    which: Callable[[str], str | None] = shutil.which
    processes: Callable[[], Collection[str]] = running_processes
    env: Mapping[str, str] | None = None
    _procs: Collection[str] | None = field(default=None, repr=False)

    def run(self, *argv: str, check: bool = True) -> str:
        return self.runner(list(argv), check=check, env=self.env).stdout

    def running(self, name: str) -> bool:
        if self._procs is None:
            self._procs = self.processes()
        return name in self._procs


def set_gnome(path: Path, ctx: SetterContext) -> str:
    uri = path.as_uri()
    schema = "org.gnome.desktop.background"
    keys = ctx.run("gsettings", "list-keys", schema).split()
    ctx.run("gsettings", "set", schema, "picture-uri", uri)
    # picture-uri-dark exists since GNOME 42; without it the dark style keeps the old picture.
    if "picture-uri-dark" in keys:
        ctx.run("gsettings", "set", schema, "picture-uri-dark", uri)
    ctx.run("gsettings", "set", schema, "picture-options", _GNOME_OPTIONS[ctx.mode])
    return "gsettings org.gnome.desktop.background picture-uri" + (" + picture-uri-dark" if
                                                                  "picture-uri-dark" in keys else "")


def set_cinnamon(path: Path, ctx: SetterContext) -> str:
    schema = "org.cinnamon.desktop.background"
    ctx.run("gsettings", "set", schema, "picture-uri", path.as_uri())
    ctx.run("gsettings", "set", schema, "picture-options", _GNOME_OPTIONS[ctx.mode])
    return f"gsettings {schema}"


def set_mate(path: Path, ctx: SetterContext) -> str:
    schema = "org.mate.background"
    ctx.run("gsettings", "set", schema, "picture-filename", str(path))
    ctx.run("gsettings", "set", schema, "picture-options", _GNOME_OPTIONS[ctx.mode])
    return f"gsettings {schema}"


def kde_script(path: Path, mode: str) -> str:
    """Plasma 5/6 scripting: every desktop containment gets the image plugin and our picture."""
    return (
        "var ds = desktops();"
        "for (var i = 0; i < ds.length; i++) {"
        " var d = ds[i];"
        ' d.wallpaperPlugin = "org.kde.image";'
        ' d.currentConfigGroup = ["Wallpaper", "org.kde.image", "General"];'
        f' d.writeConfig("Image", {json.dumps(path.as_uri())});'
        f' d.writeConfig("FillMode", {_KDE_FILL[mode]});'
        "}"
    )


def set_kde(path: Path, ctx: SetterContext) -> str:
    script = kde_script(path, ctx.mode)
    for qdbus in ("qdbus6", "qdbus-qt6", "qdbus-qt5", "qdbus"):
        if ctx.which(qdbus):
            ctx.run(qdbus, "org.kde.plasmashell", "/PlasmaShell", "org.kde.PlasmaShell.evaluateScript",
                    script)
            return f"{qdbus} org.kde.PlasmaShell.evaluateScript"
    ctx.run("dbus-send", "--session", "--print-reply", "--dest=org.kde.plasmashell", "/PlasmaShell",
            "org.kde.PlasmaShell.evaluateScript", f"string:{script}")
    return "dbus-send org.kde.PlasmaShell.evaluateScript"


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
    targets = _xfce_targets(ctx)
    for prefix in targets:
        ctx.run("xfconf-query", "-c", "xfce4-desktop", "-p", f"{prefix}/last-image", "-n", "-t", "string",
                "-s", str(path))
        ctx.run("xfconf-query", "-c", "xfce4-desktop", "-p", f"{prefix}/image-style", "-n", "-t", "int",
                "-s", str(_XFCE_STYLE[ctx.mode]))
    return f"xfconf-query on {len(targets)} monitor/workspace propert{'y' if len(targets) == 1 else 'ies'}"


def set_lxqt(path: Path, ctx: SetterContext) -> str:
    ctx.run("pcmanfm-qt", f"--set-wallpaper={path}", f"--wallpaper-mode={_PCMANFM_QT[ctx.mode]}")
    return "pcmanfm-qt --set-wallpaper"


def set_lxde(path: Path, ctx: SetterContext) -> str:
    ctx.run("pcmanfm", f"--set-wallpaper={path}", f"--wallpaper-mode={_PCMANFM[ctx.mode]}")
    return "pcmanfm --set-wallpaper"


def _swww_binary(ctx: SetterContext) -> str | None:
    for name in ("awww", "swww"):  # swww was renamed awww; either client talks to its daemon
        if ctx.running(f"{name}-daemon") and ctx.which(name):
            return name
    return None


def set_swww(path: Path, ctx: SetterContext) -> str:
    binary = _swww_binary(ctx) or ("awww" if ctx.which("awww") else "swww")
    ctx.run(binary, "img", str(path), "--resize", _SWWW[ctx.mode])
    return f"{binary} img"


def set_sway(path: Path, ctx: SetterContext) -> str:
    if _swww_binary(ctx):
        return set_swww(path, ctx)
    # swaymsg joins its arguments into one sway command: quote the path for spaces.
    quoted = '"' + str(path).replace('"', '\\"') + '"'
    ctx.run("swaymsg", f"output * bg {quoted} {_SWAY[ctx.mode]}")
    return "swaymsg output * bg"


def set_hyprland(path: Path, ctx: SetterContext) -> str:
    if _swww_binary(ctx):
        return set_swww(path, ctx)
    if not ctx.running("hyprpaper"):
        raise DesktopError("Hyprland: no wallpaper daemon running (hyprpaper, swww-daemon or awww-daemon)",
                           hint="start one from hyprland.conf (exec-once = hyprpaper), or set desktop.setter")
    ctx.run("hyprctl", "hyprpaper", "preload", str(path))
    ctx.run("hyprctl", "hyprpaper", "wallpaper", f",{path}")  # empty monitor = every monitor
    ctx.run("hyprctl", "hyprpaper", "unload", "unused", check=False)  # free the old image's memory
    return "hyprctl hyprpaper"


def set_feh(path: Path, ctx: SetterContext) -> str:
    ctx.run("feh", "--no-fehbg", _FEH[ctx.mode], str(path))
    return "feh"


def set_xwallpaper(path: Path, ctx: SetterContext) -> str:
    ctx.run("xwallpaper", _XWALLPAPER[ctx.mode], str(path))
    return "xwallpaper"


def set_macos(path: Path, ctx: SetterContext) -> str:
    target = str(path).replace("\\", "\\\\").replace('"', '\\"')
    ctx.run("osascript", "-e",
            f'tell application "System Events" to tell every desktop to set picture to "{target}"')
    return "osascript System Events"


def windows_script(path: Path, mode: str) -> str:
    style, tile = _WINDOWS_STYLE[mode]
    literal = "'" + str(path).replace("'", "''") + "'"
    return (
        "$ErrorActionPreference = 'Stop'; "
        f"Set-ItemProperty -Path 'HKCU:\\Control Panel\\Desktop' -Name WallpaperStyle -Value '{style}'; "
        f"Set-ItemProperty -Path 'HKCU:\\Control Panel\\Desktop' -Name TileWallpaper -Value '{tile}'; "
        "Add-Type -TypeDefinition 'using System.Runtime.InteropServices; public class AiWallpaper { "
        "[DllImport(\"user32.dll\", CharSet = CharSet.Unicode, SetLastError = true)] "
        "public static extern bool SystemParametersInfo(int a, int b, string c, int d); }'; "
        # SPI_SETDESKWALLPAPER = 20; SPIF_UPDATEINIFILE | SPIF_SENDCHANGE = 3
        f"if (-not [AiWallpaper]::SystemParametersInfo(20, 0, {literal}, 3)) "
        "{ throw ('SystemParametersInfo failed: ' + [Runtime.InteropServices.Marshal]::GetLastWin32Error()) }"
    )


def set_windows(path: Path, ctx: SetterContext) -> str:
    ctx.run("powershell", "-NoProfile", "-NonInteractive", "-Command", windows_script(path, ctx.mode))
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
