"""Per-monitor setters for desktops that cannot run here: the exact argv, with hostile file names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ai_wallpaper.config.screens import Screen
from ai_wallpaper.core.errors import DesktopError
from ai_wallpaper.desktop.per_monitor import PER_MONITOR, compose_span, kde_per_monitor_script
from ai_wallpaper.desktop.quoting import sway_path_word
from ai_wallpaper.desktop.setter_context import SetterContext
from tests.desktop.test_desktop_setters import Recorder

LEFT, RIGHT = Screen("DP-1", 2560, 1440, 0, 0), Screen("HDMI-A-1", 1080, 1920, 2560, 0)
A, B = Path("/walls/wallpaper-x--dp-1 $(touch pwned).png"), Path("/walls/wallpaper-x--hdmi-a-1.png")
PLACED = [(LEFT, A), (RIGHT, B)]


def _run(setter: str, binaries: set[str] = frozenset(), procs: set[str] = frozenset(),  # type: ignore[assignment]
         answers: dict[tuple[str, ...], str] | None = None) -> list[list[str]]:
    rec = Recorder(answers)
    ctx = SetterContext(runner=rec, which=lambda b: b if b in binaries else None, processes=lambda: procs, env={})
    PER_MONITOR[setter](PLACED, ctx)
    return rec.calls


def test_sway_sets_each_output_with_the_path_spelled_for_its_parser() -> None:
    assert _run("sway") == [["swaymsg", f"output DP-1 bg {sway_path_word(A)} fill"],
                            ["swaymsg", f"output HDMI-A-1 bg {sway_path_word(B)} fill"]]


def test_swww_and_hyprland_name_each_monitor() -> None:
    assert _run("swww", binaries={"swww"}, procs={"swww-daemon"}) == [
        ["swww", "img", "--outputs", "DP-1", str(A), "--resize", "crop"],
        ["swww", "img", "--outputs", "HDMI-A-1", str(B), "--resize", "crop"]]
    with pytest.raises(DesktopError, match="cannot be given this wallpaper path literally"):
        _run("hyprland", procs={"hyprpaper"})  # hyprpaper's parser would expand the '$(': refused
    rec = Recorder({("hyprctl", "hyprpaper", "wallpaper"): "ok"})
    ctx = SetterContext(runner=rec, which=lambda _: None, processes=lambda: {"hyprpaper"}, env={})
    clean = Path("/walls/wallpaper-x--dp-1.png")
    PER_MONITOR["hyprland"]([(LEFT, clean), (RIGHT, B)], ctx)
    assert ["hyprctl", "hyprpaper", "wallpaper", f"DP-1,{clean}"] in rec.calls
    assert ["hyprctl", "hyprpaper", "wallpaper", f"HDMI-A-1,{B}"] in rec.calls


def test_feh_and_xwallpaper() -> None:
    assert _run("feh") == [["feh", "--no-fehbg", "--bg-fill", str(A), str(B)]]
    assert _run("xwallpaper") == [["xwallpaper", "--output", "DP-1", "--zoom", str(A),
                                   "--output", "HDMI-A-1", "--zoom", str(B)]]


def test_xfce_gives_each_monitor_backdrop_its_picture() -> None:
    listing = ("/backdrop/screen0/monitorDP-1/workspace0/last-image\n"
               "/backdrop/screen0/monitorHDMI-A-1/workspace0/last-image")
    calls = _run("xfce", answers={("xfconf-query", "-c", "xfce4-desktop", "-l"): listing})
    images = {c[4]: c[-1] for c in calls if len(c) > 5 and c[4].endswith("/last-image")}
    assert images == {"/backdrop/screen0/monitorDP-1/workspace0/last-image": str(A),
                      "/backdrop/screen0/monitorHDMI-A-1/workspace0/last-image": str(B)}


def test_kde_script_holds_the_paths_only_as_json_strings() -> None:
    script = kde_per_monitor_script(PLACED, "zoom")
    table = json.loads(script.split("var pictures = ", 1)[1].split(";", 1)[0])
    assert table == {"0,0": A.as_uri(), "2560,0": B.as_uri()}
    assert "$(touch" not in script  # the URI escapes it; the script never holds the raw name


def test_the_spanning_canvas_puts_each_picture_at_its_place(tmp_path: Path) -> None:
    left, right = Screen("L", 64, 40, 0, 0), Screen("R", 40, 64, 64, 0)
    files = []
    for screen, color in ((left, (255, 0, 0)), (right, (0, 0, 255))):
        files.append((screen, tmp_path / f"{screen.name}.png"))
        Image.new("RGB", (screen.width, screen.height), color).save(files[-1][1])
    canvas = compose_span(files, tmp_path / "span.png")
    assert (canvas.width, canvas.height) == (104, 64)
    with Image.open(tmp_path / "span.png") as img:
        assert img.getpixel((10, 10)) == (255, 0, 0) and img.getpixel((80, 60)) == (0, 0, 255)
        assert img.getpixel((10, 60)) == (0, 0, 0)  # below the short monitor: nothing shows there
