"""Is the focused window fullscreen? For real on X11 (Xvfb, a real xmessage window, its properties set
with xprop the way a window manager sets them, read back through the product's xprop calls); sway's
and Hyprland's answers, which cannot run here, from recorded real-format output, with the exact argv."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from ai_wallpaper.desktop.runner import CommandResult
from ai_wallpaper.service.conditions import fullscreen, run_probe
from ai_wallpaper.service.fullscreen import fullscreen_window
from tests.desktop.test_desktop_real import _require, xvfb  # noqa: F401 - the Xvfb fixture


class Recorder:
    """Answers each argv from `answers` (by its first word), or runs it for real; records every argv."""

    def __init__(self, answers: dict[str, CommandResult] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        if argv[0] in self.answers:
            return self.answers[argv[0]]
        return run_probe(argv)


def ok(stdout: str) -> CommandResult:
    return CommandResult((), 0, stdout, "")


# --- X11, for real -----------------------------------------------------------------------------------
@pytest.fixture
def window(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # noqa: F811
    """A real top-level window (xmessage) on the Xvfb display; yields its X id."""
    _require("xprop", "xmessage", "xwininfo")
    for key in ("WAYLAND_DISPLAY", "SWAYSOCK", "HYPRLAND_INSTANCE_SIGNATURE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DISPLAY", xvfb)
    proc = subprocess.Popen(["xmessage", "-name", "aiw-fullscreen-test", "hello"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            info = subprocess.run(["xwininfo", "-name", "aiw-fullscreen-test"], capture_output=True, text=True)
            if info.returncode == 0:
                break
            assert time.monotonic() < deadline, "xmessage did not map its window"
            time.sleep(0.05)
        yield info.stdout.split("Window id: ")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _xprop(*args: str) -> None:
    subprocess.run(["xprop", *args], check=True, capture_output=True)


def test_x11_fullscreen_for_real(window: str) -> None:
    env = {"DISPLAY": ":x"}  # which tool is asked; the processes themselves inherit the real DISPLAY
    run = Recorder()
    # No window manager has published an active window yet: cannot tell, so no skip.
    assert fullscreen_window(run, env)[0] is None and fullscreen(run, env) is None
    assert run.calls[0] == ["xprop", "-root", "-notype", "-f", "_NET_ACTIVE_WINDOW", "32x", " $0\\n",
                            "_NET_ACTIVE_WINDOW"]
    _xprop("-root", "-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", window)
    assert fullscreen_window(run, env) == (False, "")  # the focused window has no _NET_WM_STATE
    assert run.calls[-1] == ["xprop", "-id", window, "-notype", "-f", "_NET_WM_STATE", "32a", " $0+\\n",
                             "_NET_WM_STATE"]
    _xprop("-id", window, "-f", "_NET_WM_STATE", "32a", "-set", "_NET_WM_STATE",
           "_NET_WM_STATE_ABOVE,_NET_WM_STATE_FULLSCREEN")
    assert fullscreen_window(run, env) == (True, "")
    assert fullscreen(run, env) == "a fullscreen window is active"
    _xprop("-id", window, "-f", "_NET_WM_STATE", "32a", "-set", "_NET_WM_STATE", "_NET_WM_STATE_MAXIMIZED_VERT")
    assert fullscreen_window(run, env) == (False, "")
    _xprop("-root", "-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", "0")
    assert fullscreen_window(run, env) == (False, "")  # nothing has the focus
    _xprop("-root", "-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", "0x3fffff0")
    verdict, why = fullscreen_window(run, env)  # a window that does not exist (closed in between)
    assert verdict is None and "exited 1" in why and "BadWindow" in why


def test_x11_without_a_server_or_a_display_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", ":4093")  # nothing listens there
    verdict, why = fullscreen_window(Recorder(), {"DISPLAY": ":4093"})
    assert verdict is None and "xprop exited 1" in why
    run = Recorder()
    assert fullscreen_window(run, {}) == (None, "no display (DISPLAY, WAYLAND_DISPLAY) in the environment")
    verdict, why = fullscreen_window(run, {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"})  # GNOME, KDE
    assert verdict is None and "Wayland" in why and run.calls == []
    missing = Recorder({"xprop": CommandResult(("xprop",), 127, "", "xprop: not found")})
    assert fullscreen(missing, {"DISPLAY": ":0"}) is None


@pytest.mark.parametrize("garbage", ["_NET_ACTIVE_WINDOW 0xZZ", "window id # 0x1234", "\x1b[31m;rm -rf /",
                                     "_NET_ACTIVE_WINDOW 0x123456789", ""])
def test_x11_garbage_cannot_tell(garbage: str) -> None:
    assert fullscreen_window(Recorder({"xprop": ok(garbage)}), {"DISPLAY": ":0"})[0] is None


# --- sway ------------------------------------------------------------------------------------------
def _sway_tree(mode: int, focused_in: str = "window", app: Any = "mpv") -> dict[str, Any]:
    window = {"id": 9, "type": "con", "name": "movie.mkv - mpv", "app_id": app, "focused": focused_in == "window",
              "fullscreen_mode": mode, "nodes": [], "floating_nodes": [], "pid": 4242}
    return {"id": 1, "type": "root", "name": "root", "focused": False, "fullscreen_mode": 0, "nodes": [
        {"id": 2, "type": "output", "name": "__i3", "focused": False, "nodes": []},
        {"id": 3, "type": "output", "name": "eDP-1", "focused": False, "fullscreen_mode": 0, "nodes": [
            {"id": 4, "type": "workspace", "name": "1", "focused": focused_in == "workspace", "fullscreen_mode": 0,
             "nodes": [{"id": 5, "type": "con", "name": "foot", "app_id": "foot", "focused": False,
                        "fullscreen_mode": 0, "nodes": [], "floating_nodes": []}, window],
             "floating_nodes": []}]}]}


@pytest.mark.parametrize(("tree", "expected"), [
    (_sway_tree(1), (True, "mpv")), (_sway_tree(2), (True, "mpv")), (_sway_tree(0), (False, "")),
    (_sway_tree(0, "workspace"), (False, "")),  # an empty workspace has the focus
    (_sway_tree(1, app=None), (True, "movie.mkv - mpv")),  # an X11 window under sway has no app_id
    (_sway_tree(1, app="evil\x1b[2J\n" + "x" * 100), (True, "evil[2J" + "x" * 33)),
    (_sway_tree(True), (False, "")),  # a bool is not a mode
])
def test_sway(tree: dict[str, Any], expected: tuple[bool, str]) -> None:
    run = Recorder({"swaymsg": ok(json.dumps(tree))})
    assert fullscreen_window(run, {"SWAYSOCK": "/run/user/1000/sway-ipc.sock", "DISPLAY": ":0"}) == expected
    assert run.calls == [["swaymsg", "-t", "get_tree", "--raw"]]


@pytest.mark.parametrize("stdout", ["not json", "[]", '{"nodes": 5}', "[" * 200_000 + "]" * 200_000,
                                    json.dumps({"nodes": [{"nodes": []}] * 3})])
def test_sway_garbage_cannot_tell(stdout: str) -> None:
    assert fullscreen_window(Recorder({"swaymsg": ok(stdout)}), {"SWAYSOCK": "s"})[0] is None


# --- Hyprland ------------------------------------------------------------------------------------------
HYPR_WINDOW = {"address": "0x55d1c7a3e0f0", "mapped": True, "hidden": False, "at": [0, 0], "size": [2560, 1440],
               "workspace": {"id": 1, "name": "1"}, "floating": False, "pseudo": False, "monitor": 0,
               "class": "mpv", "title": "movie.mkv - mpv", "initialClass": "mpv", "initialTitle": "mpv",
               "pid": 4242, "xwayland": False, "pinned": False, "fullscreen": 2, "fullscreenClient": 2,
               "grouped": [], "tags": [], "swallowing": "0x0", "focusHistoryID": 0}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, (True, "mpv")), ({"fullscreen": 0}, (False, "")), ({"fullscreen": 1}, (False, "")),  # 1: maximized
    ({"fullscreen": 3}, (True, "mpv")),
    ({"fullscreen": True, "fullscreenMode": 0}, (True, "mpv")),  # Hyprland before 0.41
    ({"fullscreen": True, "fullscreenMode": 1}, (False, "")), ({"fullscreen": False}, (False, "")),
])
def test_hyprland(changes: dict[str, Any], expected: tuple[bool, str]) -> None:
    run = Recorder({"hyprctl": ok(json.dumps({**HYPR_WINDOW, **changes}))})
    assert fullscreen_window(run, {"HYPRLAND_INSTANCE_SIGNATURE": "abc_123", "WAYLAND_DISPLAY": "w"}) == expected
    assert run.calls == [["hyprctl", "activewindow", "-j"]]


@pytest.mark.parametrize(("stdout", "expected"), [
    ("{}", False), ("Invalid", None), ('{"fullscreen": "yes"}', None), ('{"class": "x"}', None), ("[1]", None),
])
def test_hyprland_odd_answers(stdout: str, expected: bool | None) -> None:
    assert fullscreen_window(Recorder({"hyprctl": ok(stdout)}), {"HYPRLAND_INSTANCE_SIGNATURE": "a"})[0] is expected


def test_the_real_tools_are_where_the_ci_puts_them() -> None:
    assert shutil.which("xprop") is not None, "scripts/system-deps.sh installs x11-utils"
