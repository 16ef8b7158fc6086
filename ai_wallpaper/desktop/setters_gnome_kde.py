"""The GNOME family (gsettings) and KDE Plasma (its scripting D-Bus call): with the dark-style picture
and the lock screen, which these desktops keep in their own keys.

They share desktop/setter_context.py with desktop/setters.py, whose SETTERS table lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

from ai_wallpaper.desktop.setter_context import GNOME_OPTIONS, KDE_FILL, SetterContext


def _options(ctx: SetterContext) -> str:
    return "spanned" if ctx.span else GNOME_OPTIONS[ctx.mode]


def set_gnome(path: Path, ctx: SetterContext) -> str:
    schema = "org.gnome.desktop.background"
    keys = ctx.run("gsettings", "list-keys", schema).split()
    ctx.run("gsettings", "set", schema, "picture-uri", path.as_uri())
    done = [f"gsettings {schema} picture-uri"]
    # picture-uri-dark exists since GNOME 42; the dark style shows it (desktop.dark: night, same or off).
    if ctx.dark is not None and "picture-uri-dark" in keys:
        ctx.run("gsettings", "set", schema, "picture-uri-dark", ctx.dark.as_uri())
        done.append("picture-uri-dark" + (" (night)" if ctx.dark != path else ""))
    ctx.run("gsettings", "set", schema, "picture-options", _options(ctx))
    if ctx.lock_screen:
        lock = "org.gnome.desktop.screensaver"
        ctx.run("gsettings", "set", lock, "picture-uri", path.as_uri())
        ctx.run("gsettings", "set", lock, "picture-options", _options(ctx))
        done.append(f"{lock} picture-uri")
    return " + ".join(done)


def set_cinnamon(path: Path, ctx: SetterContext) -> str:
    schema = "org.cinnamon.desktop.background"
    ctx.run("gsettings", "set", schema, "picture-uri", path.as_uri())
    ctx.run("gsettings", "set", schema, "picture-options", _options(ctx))
    return f"gsettings {schema}"


def set_mate(path: Path, ctx: SetterContext) -> str:
    schema = "org.mate.background"
    # gsettings first parses a value as GVariant text and only then takes it as a plain string; an
    # absolute path (leading '/') is never valid GVariant text, so it is stored as written.
    ctx.run("gsettings", "set", schema, "picture-filename", str(path.absolute()))
    ctx.run("gsettings", "set", schema, "picture-options", _options(ctx))
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
        f' d.writeConfig("FillMode", {KDE_FILL[mode]});'
        "}"
    )


def evaluate_kde_script(script: str, ctx: SetterContext) -> str:
    for qdbus in ("qdbus6", "qdbus-qt6", "qdbus-qt5", "qdbus"):
        if ctx.which(qdbus):
            ctx.run(qdbus, "org.kde.plasmashell", "/PlasmaShell", "org.kde.PlasmaShell.evaluateScript",
                    script)
            return f"{qdbus} org.kde.PlasmaShell.evaluateScript"
    ctx.run("dbus-send", "--session", "--print-reply", "--dest=org.kde.plasmashell", "/PlasmaShell",
            "org.kde.PlasmaShell.evaluateScript", f"string:{script}")
    return "dbus-send org.kde.PlasmaShell.evaluateScript"


def set_kde_lock_screen(path: Path, ctx: SetterContext) -> str:
    """kscreenlocker reads its picture from kscreenlockerrc; kwriteconfig writes it (Plasma 6, then 5)."""
    for tool in ("kwriteconfig6", "kwriteconfig5"):
        if ctx.which(tool):
            ctx.run(tool, "--file", "kscreenlockerrc", "--group", "Greeter", "--group", "Wallpaper",
                    "--group", "org.kde.image", "--group", "General", "--key", "Image", path.absolute().as_uri())
            return f"{tool} kscreenlockerrc"
    return "lock screen not set (no kwriteconfig6 or kwriteconfig5)"


def set_kde(path: Path, ctx: SetterContext) -> str:
    done = evaluate_kde_script(kde_script(path, ctx.mode), ctx)
    if ctx.lock_screen:
        done += " + " + set_kde_lock_screen(path, ctx)
    return done
