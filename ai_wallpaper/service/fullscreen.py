"""Is the focused window fullscreen? Asked of sway, Hyprland or the X server, whichever this session has.

`fullscreen_window(run, env)` returns (True/False, the window's app name or ""), or (None, why it
cannot tell). Every tool's output is treated as untrusted: anything unexpected (garbage, a deep or
huge tree, an unknown type) is "cannot tell", never an exception. Other Wayland desktops (GNOME, KDE)
have no common protocol for this, and XWayland's root window there only knows X clients, so a Wayland
session without sway or Hyprland is "cannot tell".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ai_wallpaper.core.untrusted_input import loads_json
from ai_wallpaper.desktop.runner import CommandResult

Run = Callable[[Sequence[str]], CommandResult]
Verdict = tuple[bool | None, str]
_MAX_NODES = 100_000
_WINDOW_ID = re.compile(r"_NET_ACTIVE_WINDOW (0x[0-9a-fA-F]{1,8})")
_WM_STATE = re.compile(r"_NET_WM_STATE ([A-Z0-9_, ]*)")
_NOT_SET = ("not found.", "no such atom on any window.")
_HYPR_FULLSCREEN = 2  # Hyprland's eFullscreenMode bit FSMODE_FULLSCREEN (1 is maximized)


def _name(value: object) -> str:
    """A window's app name for a reason line: printable, short; "" if it has none."""
    if not isinstance(value, str):
        return ""
    text = "".join(ch for ch in value if ch.isprintable())[:40]
    return text.strip()


def _json(answer: CommandResult, tool: str) -> tuple[Any, str]:
    if answer.returncode != 0:
        return None, f"{tool} exited {answer.returncode}: {answer.stderr.strip()[:200]}"
    try:
        return loads_json(answer.stdout), ""
    except ValueError as exc:
        return None, f"{tool} printed something that is not JSON ({type(exc).__name__})"


def sway(run: Run) -> Verdict:
    tree, why = _json(run(["swaymsg", "-t", "get_tree", "--raw"]), "swaymsg")
    if not isinstance(tree, dict):
        return None, why or "swaymsg's tree is not an object"
    stack: list[tuple[Any, bool]] = [(tree, False)]  # (node, an ancestor is fullscreen)
    seen = 0
    while stack and seen < _MAX_NODES:
        node, inherited = stack.pop()
        seen += 1
        if not isinstance(node, dict):
            continue
        mode = node.get("fullscreen_mode")
        full = inherited or (isinstance(mode, int) and not isinstance(mode, bool) and mode in (1, 2))
        if node.get("focused") is True:
            return full, (_name(node.get("app_id")) or _name(node.get("name"))) if full else ""
        for key in ("nodes", "floating_nodes"):
            children = node.get(key)
            if isinstance(children, list):
                stack.extend((child, full) for child in children)
    return None, "swaymsg's tree has no focused node"


def hyprland(run: Run) -> Verdict:
    window, why = _json(run(["hyprctl", "activewindow", "-j"]), "hyprctl")
    if why:
        return None, why
    if window == {} or window is None:
        return False, ""  # no window has the focus
    if not isinstance(window, dict) or "fullscreen" not in window:
        return None, "hyprctl's active window has no fullscreen field"
    value = window["fullscreen"]
    if isinstance(value, bool):  # before Hyprland 0.41: a bool, with fullscreenMode 1 meaning maximized
        full = value and window.get("fullscreenMode", 0) != 1
    elif isinstance(value, int):
        full = bool(value & _HYPR_FULLSCREEN)
    else:
        return None, f"hyprctl's fullscreen field is {type(value).__name__}"
    return full, _name(window.get("class")) if full else ""


def x11(run: Run) -> Verdict:
    # -notype and an explicit format: one line whatever type the window manager gave the property.
    active = run(["xprop", "-root", "-notype", "-f", "_NET_ACTIVE_WINDOW", "32x", " $0\\n", "_NET_ACTIVE_WINDOW"])
    text = active.stdout.strip()
    if active.returncode != 0:
        return None, f"xprop exited {active.returncode}: {active.stderr.strip()[:200]}"
    if text.endswith(_NOT_SET):
        return None, "no window manager publishes the active window (_NET_ACTIVE_WINDOW)"
    match = _WINDOW_ID.fullmatch(text)
    if match is None:
        return None, f"xprop's _NET_ACTIVE_WINDOW is not understood: {text[:120]!r}"
    window = match.group(1)
    if int(window, 16) == 0:
        return False, ""  # nothing has the focus
    state = run(["xprop", "-id", window, "-notype", "-f", "_NET_WM_STATE", "32a", " $0+\\n", "_NET_WM_STATE"])
    text = state.stdout.strip()
    if state.returncode != 0:  # the window closed in between, or a bad id
        return None, f"xprop -id {window} exited {state.returncode}: {state.stderr.strip()[:200]}"
    if text.endswith(_NOT_SET):
        return False, ""
    if text == "_NET_WM_STATE":  # set, but to no state at all
        return False, ""
    match = _WM_STATE.fullmatch(text)
    if match is None:
        return None, f"xprop's _NET_WM_STATE is not understood: {text[:120]!r}"
    atoms = {atom.strip() for atom in match.group(1).split(",")}
    return "_NET_WM_STATE_FULLSCREEN" in atoms, ""


def fullscreen_window(run: Run, env: Mapping[str, str]) -> Verdict:
    if env.get("SWAYSOCK"):
        return sway(run)
    if env.get("HYPRLAND_INSTANCE_SIGNATURE"):
        return hyprland(run)
    if env.get("WAYLAND_DISPLAY"):
        return None, "this Wayland desktop has no common way to ask for the focused window (sway and Hyprland do)"
    if env.get("DISPLAY"):
        return x11(run)
    return None, "no display (DISPLAY, WAYLAND_DISPLAY) in the environment"
