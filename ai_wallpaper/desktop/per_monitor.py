"""A wallpaper per monitor: the desktops that can take one image per monitor, and a spanning image for
those that take one picture across all of them.

Each setter gets [(screen, image)] in the plan's order and builds exact argv lists like
desktop/setters.py. Monitor names reached here through config/screens.py's MONITOR_NAME
(letters, digits, '.', '_', '-'), so they need no quoting in sway commands, hyprctl's "NAME,PATH"
or xfconf property paths; the paths are spelled by desktop/quoting.py as for one image.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from ai_wallpaper.config.screens import Screen
from ai_wallpaper.desktop.monitors import span_screen
from ai_wallpaper.desktop.quoting import hyprpaper_path, sway_path_word
from ai_wallpaper.desktop.setter_context import (
    FEH,
    KDE_FILL,
    SWAY,
    SWWW,
    XFCE_STYLE,
    XWALLPAPER,
    SetterContext,
    swww_binary,
    xfce_targets,
)
from ai_wallpaper.desktop.setters import set_hyprland as set_one_picture_everywhere
from ai_wallpaper.desktop.setters_gnome_kde import evaluate_kde_script, set_kde_lock_screen

Placed = Sequence[tuple[Screen, Path]]


def set_feh(placed: Placed, ctx: SetterContext) -> str:
    # feh gives its images to the Xinerama heads in order, which is xrandr's monitor order (ours).
    ctx.run("feh", "--no-fehbg", FEH[ctx.mode], *(str(p.absolute()) for _, p in placed))
    return f"feh on {len(placed)} monitors"


def set_xwallpaper(placed: Placed, ctx: SetterContext) -> str:
    argv = ["xwallpaper"]
    for screen, path in placed:
        argv += ["--output", screen.name, XWALLPAPER[ctx.mode], str(path.absolute())]
    ctx.run(*argv)
    return f"xwallpaper on {len(placed)} monitors"


def set_swww(placed: Placed, ctx: SetterContext) -> str:
    binary = swww_binary(ctx) or ("awww" if ctx.which("awww") else "swww")
    for screen, path in placed:
        ctx.run(binary, "img", "--outputs", screen.name, str(path.absolute()), "--resize", SWWW[ctx.mode])
    return f"{binary} img on {len(placed)} monitors"


def set_sway(placed: Placed, ctx: SetterContext) -> str:
    if swww_binary(ctx):
        return set_swww(placed, ctx)
    for screen, path in placed:
        ctx.run("swaymsg", f"output {screen.name} bg {sway_path_word(path.absolute())} {SWAY[ctx.mode]}")
    return f"swaymsg output bg on {len(placed)} monitors"


def set_hyprland(placed: Placed, ctx: SetterContext) -> str:
    if swww_binary(ctx):
        return set_swww(placed, ctx)
    set_one_picture_everywhere(placed[0][1], ctx)  # checks hyprpaper runs and sets every monitor, as a fallback picture
    for screen, path in placed:
        target = hyprpaper_path(path.absolute())
        ctx.run("hyprctl", "hyprpaper", "preload", target, check=False)
        ctx.run("hyprctl", "hyprpaper", "wallpaper", f"{screen.name},{target}")
    return f"hyprctl hyprpaper on {len(placed)} monitors"


def set_xfce(placed: Placed, ctx: SetterContext) -> str:
    by_name = {screen.name: path for screen, path in placed}
    count = 0
    for prefix in xfce_targets(ctx):
        monitor = prefix.split("/")[3].removeprefix("monitor")  # /backdrop/screen0/monitorDP-1/workspace0
        path = by_name.get(monitor, placed[0][1])  # monitor0 and the like: the first monitor's picture
        ctx.run("xfconf-query", "-c", "xfce4-desktop", "-p", f"{prefix}/last-image", "-n", "-t", "string",
                "-s", str(path.absolute()))
        ctx.run("xfconf-query", "-c", "xfce4-desktop", "-p", f"{prefix}/image-style", "-n", "-t", "int",
                "-s", str(XFCE_STYLE[ctx.mode]))
        count += 1
    return f"xfconf-query on {count} monitor/workspace properties, {len(placed)} pictures"


def kde_per_monitor_script(placed: Placed, mode: str) -> str:
    """Plasma scripting: each desktop containment takes the picture of the monitor at its screen's
    top-left corner (Plasma numbers screens its own way, the geometry is what both of us agree on)."""
    pictures = {f"{s.x},{s.y}": p.absolute().as_uri() for s, p in placed}
    return (
        f"var pictures = {json.dumps(pictures)}; var first = {json.dumps(placed[0][1].absolute().as_uri())};"
        "var ds = desktops();"
        "for (var i = 0; i < ds.length; i++) {"
        " var d = ds[i]; var g = screenGeometry(d.screen);"
        ' var picture = pictures[g.x + "," + g.y] || first;'
        ' d.wallpaperPlugin = "org.kde.image";'
        ' d.currentConfigGroup = ["Wallpaper", "org.kde.image", "General"];'
        ' d.writeConfig("Image", picture);'
        f' d.writeConfig("FillMode", {KDE_FILL[mode]});'
        "}"
    )


def set_kde(placed: Placed, ctx: SetterContext) -> str:
    done = evaluate_kde_script(kde_per_monitor_script(placed, ctx.mode), ctx) + f" on {len(placed)} monitors"
    if ctx.lock_screen:
        done += " + " + set_kde_lock_screen(placed[0][1], ctx)
    return done


PER_MONITOR: dict[str, Callable[[Placed, SetterContext], str]] = {
    "feh": set_feh, "xwallpaper": set_xwallpaper, "swww": set_swww, "sway": set_sway,
    "hyprland": set_hyprland, "xfce": set_xfce, "kde": set_kde,
}
# One picture across all monitors, with the desktop's own "spanned" picture option.
SPANNING = frozenset({"gnome", "cinnamon", "mate"})


def compose_span(placed: Placed, target: Path) -> Screen:
    """Paste each monitor's picture at its place on one canvas covering them all; returns the canvas."""
    from PIL import Image

    canvas_screen = span_screen([s for s, _ in placed])
    canvas = Image.new("RGB", (canvas_screen.width, canvas_screen.height))
    for screen, path in placed:
        with Image.open(path) as img:
            picture = img.convert("RGB")
        if picture.size != (screen.width, screen.height):
            picture = picture.resize((screen.width, screen.height), Image.Resampling.LANCZOS)
        canvas.paste(picture, (screen.x - canvas_screen.x, screen.y - canvas_screen.y))
    canvas.save(target, format="PNG", compress_level=1)
    return canvas_screen
