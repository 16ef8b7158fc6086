"""Monitors: detection parsers on real tool output and garbage, a real Xvfb with RandR monitors, feh
painting each monitor its own picture, sets kept whole, and hostile set files."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from ai_wallpaper.config.screens import Screen
from ai_wallpaper.config.settings import DesktopSettings, settings_from_dict
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.desktop import OWNED_LIST, apply_wallpaper, set_existing_wallpaper
from ai_wallpaper.desktop.monitors import (
    detect_monitors,
    parse_hyprland,
    parse_kscreen,
    parse_sway,
    parse_xrandr,
    screens_for_plan,
)
from ai_wallpaper.desktop.night import night_variant
from ai_wallpaper.desktop.wallpaper_sets import read_set
from tests.desktop.test_desktop_real import _read_xwd, _require, running_xvfb
from tests.desktop.test_desktop_setters import Recorder

XRANDR = """Monitors: 2
 0: +*DP-1 2560/597x1440/336+0+0  DP-1
 1: +HDMI-A-1 1080/530x1920/300+2560+0  HDMI-A-1
"""


def test_xrandr_listing_is_read_in_the_servers_order() -> None:
    assert parse_xrandr(XRANDR) == [Screen("DP-1", 2560, 1440, 0, 0), Screen("HDMI-A-1", 1080, 1920, 2560, 0)]


def test_sway_hyprland_and_kde_answers_give_native_sizes_turned_as_shown() -> None:
    sway = [{"name": "DP-1", "active": True, "rect": {"x": 0, "y": 0, "width": 1280, "height": 720},
             "current_mode": {"width": 2560, "height": 1440}, "transform": "normal"},
            {"name": "DP-2", "active": True, "rect": {"x": 1280, "y": 0, "width": 1080, "height": 1920},
             "current_mode": {"width": 1920, "height": 1080}, "transform": "90"},
            {"name": "DP-3", "active": False, "rect": {}, "current_mode": {}}]
    assert parse_sway(json.dumps(sway)) == [Screen("DP-1", 2560, 1440, 0, 0), Screen("DP-2", 1080, 1920, 1280, 0)]
    hypr = [{"name": "eDP-1", "width": 2880, "height": 1800, "x": 0, "y": 0, "transform": 0},
            {"name": "DP-4", "width": 2560, "height": 1440, "x": 2880, "y": 0, "transform": 1, "disabled": False}]
    assert parse_hyprland(json.dumps(hypr)) == [Screen("eDP-1", 2880, 1800, 0, 0), Screen("DP-4", 1440, 2560, 2880, 0)]
    kde = {"outputs": [{"name": "HDMI-A-1", "enabled": True, "connected": True, "currentModeId": "3",
                        "modes": [{"id": "3", "size": {"width": 3840, "height": 2160}}], "pos": {"x": 0, "y": 0},
                        "rotation": 8},
                       {"name": "DP-9", "enabled": False, "connected": True}]}
    assert parse_kscreen(json.dumps(kde)) == [Screen("HDMI-A-1", 2160, 3840, 0, 0)]


@pytest.mark.parametrize("text", ["", "garbage", "[1, 2]", '{"outputs": 3}', "null", "[" * 5000,
                                  json.dumps([{"name": "$(touch /tmp/pwned)", "width": 100, "height": 100}]),
                                  json.dumps([{"name": "DP-1,/etc/passwd", "width": 100, "height": 100}]),
                                  json.dumps([{"name": "DP-1", "width": 10**9, "height": 100}]),
                                  json.dumps([{"name": "DP-1", "width": True, "height": 100}])])
def test_garbage_and_hostile_answers_give_no_monitors(text: str) -> None:
    for parse in (parse_sway, parse_hyprland, parse_kscreen, parse_xrandr):
        assert parse(text) == [], parse.__name__


def test_configured_monitors_win_and_are_validated() -> None:
    settings = DesktopSettings(monitors=None, layout="single")
    assert screens_for_plan(settings, {}, which=lambda _: None, processes=set) == ()
    with pytest.raises(ConfigError, match=r"desktop\.monitors\[1\]\.name: 'DP-1' is listed twice"):
        settings_from_dict({"desktop": {"monitors": [{"name": "DP-1"}, {"name": "DP-1"}]}})
    with pytest.raises(ConfigError) as err:  # every broken monitor at once, each with its key path
        settings_from_dict({"desktop": {"monitors": [{"name": "$(touch pwned)"}, {"name": "X", "width": 8}]}})
    text = str(err.value)
    assert "desktop.monitors[0].name: '$(touch pwned)' is not a connector name" in text
    assert "desktop.monitors[1].width: must be >= 64" in text


@pytest.fixture
def two_monitor_xvfb() -> Iterator[str]:
    _require("Xvfb", "xwd", "feh", "xrandr")
    with running_xvfb(f":{500 + os.getpid() % 400}", "300x100") as display:
        env = {**os.environ, "DISPLAY": display}
        # The output's own monitor becomes LEFT; RIGHT is a second RandR 1.5 monitor, which Xinerama
        # clients (feh) see as a second head.
        for name, geometry, output in (("LEFT", "200/200x100/100+0+0", "screen"),
                                       ("RIGHT", "100/100x100/100+200+0", "none")):
            subprocess.run(["xrandr", "--setmonitor", name, geometry, output], env=env, check=True,
                           capture_output=True)
        yield display


def test_feh_paints_each_randr_monitor_its_own_picture(two_monitor_xvfb: str, paths: Paths, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("XDG_CURRENT_DESKTOP", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION", "GDMSESSION", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DISPLAY", two_monitor_xvfb)
    screens = detect_monitors(None, dict(os.environ), which=lambda b: f"/usr/bin/{b}")
    assert screens == [Screen("LEFT", 200, 100, 0, 0), Screen("RIGHT", 100, 100, 200, 0)]
    assert screens_for_plan(DesktopSettings(), dict(os.environ), which=lambda b: f"/usr/bin/{b}",
                            processes=set) == tuple(screens)
    pictures = []
    for screen, color in zip(screens, ((200, 30, 60), (20, 40, 220)), strict=True):
        pictures.append((screen, tmp_path / f"{screen.name}.png"))
        Image.new("RGB", (screen.width, screen.height), color).save(pictures[-1][1])
    result = apply_wallpaper(pictures[0][1], DesktopSettings(), paths, run_id="m1", screens=pictures,
                             processes=set)
    assert result.setter == "feh" and "2 monitors" in result.detail

    def root() -> Image.Image:
        return _read_xwd(subprocess.run(["xwd", "-root", "-silent", "-display", two_monitor_xvfb],
                                        capture_output=True, check=True).stdout)

    shown = root()
    assert shown.crop((0, 0, 200, 100)).getcolors() == [(20000, (200, 30, 60))]
    assert shown.crop((200, 0, 300, 100)).getcolors() == [(10000, (20, 40, 220))]
    # `previous` re-sets the whole set from the standing picture alone
    Image.new("RGB", (300, 100), (0, 0, 0)).save(tmp_path / "black.png")
    subprocess.run(["feh", "--no-fehbg", "--bg-fill", str(tmp_path / "black.png")], check=True,
                   env={**os.environ})
    set_existing_wallpaper(result.path, DesktopSettings(), processes=set)
    again = root()
    assert again.crop((200, 0, 300, 100)).getcolors() == [(10000, (20, 40, 220))]


def test_sets_are_pruned_whole_and_a_hostile_set_file_is_ignored(paths: Paths, tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(a)
    Image.new("RGB", (64, 64), (4, 5, 6)).save(b)
    screens = [(Screen("DP-1", 64, 64), a), (Screen("DP-2", 64, 64, 64, 0), b)]
    made = []
    for i in range(3):
        rec = Recorder()
        made.append(apply_wallpaper(a, DesktopSettings(setter="xwallpaper", keep=1), paths, run_id=f"r{i}",
                                    screens=screens, runner=rec, env={}).path)
        assert rec.calls[0][:3] == ["xwallpaper", "--output", "DP-1"] and rec.calls[0][5:7] == ["--output", "DP-2"]
        os.utime(made[-1], (1000 + i, 1000 + i))
        for member in made[-1].parent.glob(made[-1].stem + "*"):
            os.utime(member, (1000 + i, 1000 + i))
    names = sorted(p.name for p in paths.wallpapers_dir.iterdir() if p.name != OWNED_LIST)
    assert all(n.startswith(made[-1].stem) for n in names) and len(names) == 4  # picture, 2 monitors, set file
    set_file = made[-1].with_name(made[-1].stem + ".screens.json")
    data = json.loads(set_file.read_text())
    data["screens"][1]["file"] = "../../../etc/passwd"
    set_file.write_text(json.dumps(data))
    assert read_set(made[-1]) == []
    rec = Recorder()
    set_existing_wallpaper(made[-1], DesktopSettings(setter="xwallpaper"), runner=rec, env={})
    assert rec.calls == [["xwallpaper", "--zoom", str(made[-1])]]  # the one picture, nothing else read


def test_the_night_picture_is_darker_and_bluer() -> None:
    day = Image.new("RGB", (32, 32), (180, 170, 120))
    night = night_variant(day).getpixel((0, 0))
    assert isinstance(night, tuple) and sum(night) < 0.5 * sum((180, 170, 120))
    assert night[2] / night[0] > 120 / 180  # blue gained on red


def test_a_spanned_gnome_set_gets_its_own_listed_night_picture_pruned_with_it(paths: Paths, tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (64, 64), (200, 180, 120)).save(a)
    Image.new("RGB", (64, 64), (120, 180, 200)).save(b)
    screens = [(Screen("DP-1", 64, 64), a), (Screen("DP-2", 64, 64, 64, 0), b)]
    keys = "picture-options picture-uri picture-uri-dark"
    made = []
    for i in range(2):
        rec = Recorder({("gsettings", "list-keys"): keys})
        made.append(apply_wallpaper(a, DesktopSettings(setter="gnome", keep=1), paths, run_id=f"s{i}",
                                    screens=screens, runner=rec, env={}).path)
        span, night = (made[-1].with_name(f"{made[-1].stem}--{what}.png") for what in ("span", "night"))
        assert ["gsettings", "set", "org.gnome.desktop.background", "picture-uri", span.as_uri()] in rec.calls
        assert ["gsettings", "set", "org.gnome.desktop.background", "picture-uri-dark", night.as_uri()] in rec.calls
        with Image.open(night) as img:
            assert img.size == (128, 64)  # the night version of the spanning canvas
        for member in made[-1].parent.glob(made[-1].stem + "*"):
            os.utime(member, (1000 + i, 1000 + i))
    listed = (paths.wallpapers_dir / OWNED_LIST).read_text().split()
    left = sorted(p.name for p in paths.wallpapers_dir.iterdir() if p.name != OWNED_LIST)
    assert all(n.startswith(made[1].stem) for n in left) and set(left) <= set(listed)  # s0's set went whole


@pytest.mark.parametrize("content", [b"[" * 4000, b"{" + b" " * 70_000 + b"}", b"\xff\xfe"])
def test_a_broken_set_file_shows_the_one_picture(paths: Paths, tmp_path: Path, content: bytes) -> None:
    a = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(a)
    screens = [(Screen("DP-1", 64, 64), a), (Screen("DP-2", 64, 64, 64, 0), a)]
    made = apply_wallpaper(a, DesktopSettings(setter="feh"), paths, run_id="b1", screens=screens,
                           runner=Recorder(), env={}).path
    made.with_name(made.stem + ".screens.json").write_bytes(content)
    assert read_set(made) == []
    rec = Recorder()
    set_existing_wallpaper(made, DesktopSettings(setter="feh"), runner=rec, env={})
    assert rec.calls == [["feh", "--no-fehbg", "--bg-fill", str(made)]]
