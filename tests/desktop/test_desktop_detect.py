"""Desktop detection decision table: XDG_CURRENT_DESKTOP → session vars → daemons → binaries."""

from __future__ import annotations

from collections.abc import Callable, Collection

import pytest

from ai_wallpaper.desktop import detect_desktop


def _which(available: Collection[str]) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in available else None


CASES: list[tuple[str, dict[str, str], set[str], set[str], str | None]] = [
    # (case, env, running processes, binaries on PATH, expected)
    ("gnome", {"XDG_CURRENT_DESKTOP": "GNOME", "DISPLAY": ":0"}, set(), {"feh"}, "gnome"),
    ("ubuntu gnome", {"XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}, set(), set(), "gnome"),
    ("budgie", {"XDG_CURRENT_DESKTOP": "Budgie:GNOME"}, set(), set(), "gnome"),
    ("kde", {"XDG_CURRENT_DESKTOP": "KDE"}, set(), set(), "kde"),
    ("xfce", {"XDG_CURRENT_DESKTOP": "XFCE"}, set(), set(), "xfce"),
    ("cinnamon", {"XDG_CURRENT_DESKTOP": "X-Cinnamon"}, set(), set(), "cinnamon"),
    ("mate", {"XDG_CURRENT_DESKTOP": "MATE"}, set(), set(), "mate"),
    ("lxqt", {"XDG_CURRENT_DESKTOP": "LXQt"}, set(), set(), "lxqt"),
    ("lxde", {"XDG_CURRENT_DESKTOP": "LXDE"}, set(), set(), "lxde"),
    ("sway", {"XDG_CURRENT_DESKTOP": "sway"}, set(), set(), "sway"),
    ("hyprland", {"XDG_CURRENT_DESKTOP": "Hyprland"}, {"hyprpaper"}, set(), "hyprland"),
    ("unknown xdg, then session", {"XDG_CURRENT_DESKTOP": "Foo", "DESKTOP_SESSION": "plasma"}, set(), set(),
     "kde"),
    ("session path", {"DESKTOP_SESSION": "/usr/share/xsessions/xfce"}, set(), set(), "xfce"),
    ("gdmsession", {"GDMSESSION": "mate"}, set(), set(), "mate"),
    ("kde flag", {"KDE_FULL_SESSION": "true"}, set(), set(), "kde"),
    ("swaysock", {"SWAYSOCK": "/run/user/1000/sway-ipc.sock"}, set(), set(), "sway"),
    ("hyprland signature", {"HYPRLAND_INSTANCE_SIGNATURE": "abc"}, set(), set(), "hyprland"),
    ("xdg beats session", {"XDG_CURRENT_DESKTOP": "XFCE", "DESKTOP_SESSION": "gnome"}, set(), set(), "xfce"),
    ("daemon: swww on wayland", {"WAYLAND_DISPLAY": "wayland-1"}, {"swww-daemon"}, set(), "swww"),
    ("daemon: awww", {"WAYLAND_DISPLAY": "wayland-1"}, {"awww-daemon"}, set(), "swww"),
    ("daemon: hyprpaper", {"WAYLAND_DISPLAY": "wayland-1"}, {"hyprpaper"}, set(), "hyprland"),
    ("daemon: xfdesktop", {"DISPLAY": ":0"}, {"xfdesktop"}, {"feh"}, "xfce"),
    ("daemon beats binary", {"DISPLAY": ":0"}, {"plasmashell"}, {"feh"}, "kde"),
    ("binary: feh", {"DISPLAY": ":0"}, set(), {"feh", "xwallpaper"}, "feh"),
    ("binary: xwallpaper", {"DISPLAY": ":0"}, set(), {"xwallpaper"}, "xwallpaper"),
    ("binary: swww on wayland", {"WAYLAND_DISPLAY": "wayland-0"}, set(), {"swww", "feh"}, "swww"),
    ("x11 binary needs DISPLAY", {"WAYLAND_DISPLAY": "wayland-0"}, set(), {"feh"}, None),
    ("headless", {}, {"hyprpaper"}, {"feh", "gsettings"}, None),
    ("display but nothing", {"DISPLAY": ":0"}, set(), set(), None),
]


@pytest.mark.parametrize(("env", "procs", "binaries", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_detection_table(env: dict[str, str], procs: set[str], binaries: set[str],
                         expected: str | None) -> None:
    assert detect_desktop(env, which=_which(binaries), processes=lambda: procs, platform="linux") == expected


@pytest.mark.parametrize(("platform", "expected"), [("darwin", "macos"), ("win32", "windows")])
def test_platform_first(platform: str, expected: str) -> None:
    env = {"XDG_CURRENT_DESKTOP": "GNOME"}
    assert detect_desktop(env, which=_which(set()), processes=set, platform=platform) == expected


def test_processes_are_only_listed_when_needed() -> None:
    def boom() -> set[str]:
        raise AssertionError("process scan must not run when env vars decide")

    assert detect_desktop({"XDG_CURRENT_DESKTOP": "KDE"}, which=_which(set()), processes=boom,
                          platform="linux") == "kde"
    assert detect_desktop({}, which=_which(set()), processes=boom, platform="linux") is None
