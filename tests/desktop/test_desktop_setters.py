"""Setters that cannot run here (KDE, XFCE, sway, Hyprland, macOS, Windows…): the exact argv they run.
Plus apply_wallpaper's file handling: new names, atomic copy, pruning, errors with the command output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from PIL import Image

from ai_wallpaper.config.settings import DesktopSettings
from ai_wallpaper.core.errors import DesktopError
from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.desktop import OWNED_LIST, CommandResult, apply_wallpaper, run_command, set_existing_wallpaper
from ai_wallpaper.desktop.setters import MACOS_SCRIPT, windows_script
from ai_wallpaper.desktop.setters_gnome_kde import kde_script

IMG = Path("/walls/wallpaper-1 a.png")


class Recorder:
    """Records argv; answers from a table of argv-prefix → stdout (or a failing exit)."""

    def __init__(self, answers: dict[tuple[str, ...], str] | None = None,
                 fail: tuple[str, ...] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answers = answers or {}
        self.fail = fail

    def __call__(self, argv: Sequence[str], *, check: bool = True,
                 env: Mapping[str, str] | None = None) -> CommandResult:
        self.calls.append(list(argv))
        if self.fail and tuple(argv[:len(self.fail)]) == self.fail:
            raise DesktopError(f"wallpaper setter failed (exit 1): {' '.join(argv)}\nno such thing")
        out = next((v for k, v in self.answers.items() if tuple(argv[:len(k)]) == k), "")
        return CommandResult(tuple(argv), 0, out, "")


def run_setter(name: str, *, mode: str = "zoom", answers: dict[tuple[str, ...], str] | None = None,
               binaries: set[str] = frozenset(), procs: set[str] = frozenset(),  # type: ignore[assignment]
               command: list[str] | None = None) -> list[list[str]]:
    rec = Recorder(answers)
    settings = DesktopSettings(setter=name, mode=mode, command=command or [])  # type: ignore[arg-type]
    set_existing_wallpaper(IMG, settings, runner=rec, env={}, which=lambda b: b if b in binaries else None,
                           processes=lambda: procs)
    return rec.calls


URI = IMG.as_uri()


def test_gnome_sets_light_and_dark_uri() -> None:
    keys = "picture-options picture-uri picture-uri-dark primary-color"
    assert run_setter("gnome", answers={("gsettings", "list-keys"): keys}) == [
        ["gsettings", "list-keys", "org.gnome.desktop.background"],
        ["gsettings", "set", "org.gnome.desktop.background", "picture-uri", URI],
        ["gsettings", "set", "org.gnome.desktop.background", "picture-uri-dark", URI],
        ["gsettings", "set", "org.gnome.desktop.background", "picture-options", "zoom"],
    ]
    old_gnome = run_setter("gnome", mode="scale", answers={("gsettings", "list-keys"): "picture-uri"})
    assert ["gsettings", "set", "org.gnome.desktop.background", "picture-uri-dark", URI] not in old_gnome
    assert old_gnome[-1][-1] == "scaled"


def test_kde_uses_plasmashell_evaluate_script() -> None:
    calls = run_setter("kde", binaries={"qdbus6"}, mode="tile")
    assert calls == [["qdbus6", "org.kde.plasmashell", "/PlasmaShell", "org.kde.PlasmaShell.evaluateScript",
                      kde_script(IMG, "tile")]]
    script = calls[0][-1]
    assert 'd.wallpaperPlugin = "org.kde.image"' in script
    assert f'writeConfig("Image", {json.dumps(URI)})' in script
    assert 'writeConfig("FillMode", 3)' in script
    assert run_setter("kde") == [["dbus-send", "--session", "--print-reply", "--dest=org.kde.plasmashell",
                                  "/PlasmaShell", "org.kde.PlasmaShell.evaluateScript",
                                  f"string:{kde_script(IMG, 'zoom')}"]]


def test_xfce_sets_every_monitor_and_workspace_and_creates_missing() -> None:
    listing = "\n".join(["/backdrop/screen0/monitorVGA-1/workspace0/last-image",
                         "/backdrop/screen0/monitorVGA-1/workspace0/image-style",
                         "/backdrop/screen0/monitorVGA-1/workspace1/last-image",
                         "/desktop-icons/style"])
    calls = run_setter("xfce", binaries={"xrandr"}, answers={
        ("xfconf-query", "-c", "xfce4-desktop", "-l"): listing,
        ("xrandr",): "Monitors: 2\n 0: +*eDP-1 1920/344x1080/194+0+0  eDP-1\n"
                     " 1: +HDMI-1 1920/527x1080/296+1920+0  HDMI-1\n",
        ("xfconf-query", "-c", "xfwm4"): "2\n",
    })
    sets = [c for c in calls if "-s" in c]
    prefixes = sorted({c[4].rsplit("/", 1)[0] for c in sets})
    assert prefixes == [f"/backdrop/screen0/monitor{m}/workspace{w}"
                        for m in ("HDMI-1", "VGA-1", "eDP-1") for w in (0, 1)]
    base = ["xfconf-query", "-c", "xfce4-desktop", "-p"]
    assert [*base, "/backdrop/screen0/monitoreDP-1/workspace1/last-image", "-n", "-t", "string", "-s",
            str(IMG)] in sets
    style = "/backdrop/screen0/monitorVGA-1/workspace0/image-style"
    assert [*base, style, "-n", "-t", "int", "-s", "5"] in sets
    assert len(sets) == 12


def test_simple_setters_exact_argv() -> None:
    assert run_setter("cinnamon") == [
        ["gsettings", "set", "org.cinnamon.desktop.background", "picture-uri", URI],
        ["gsettings", "set", "org.cinnamon.desktop.background", "picture-options", "zoom"]]
    assert run_setter("mate", mode="fill") == [
        ["gsettings", "set", "org.mate.background", "picture-filename", str(IMG)],
        ["gsettings", "set", "org.mate.background", "picture-options", "stretched"]]
    assert run_setter("lxqt") == [["pcmanfm-qt", f"--set-wallpaper={IMG}", "--wallpaper-mode=zoom"]]
    assert run_setter("lxde") == [["pcmanfm", f"--set-wallpaper={IMG}", "--wallpaper-mode=crop"]]
    assert run_setter("feh", mode="center") == [["feh", "--no-fehbg", "--bg-center", str(IMG)]]
    assert run_setter("xwallpaper") == [["xwallpaper", "--zoom", str(IMG)]]
    # sway: shell single quotes (for sway's wordexp) inside sway double quotes (see tests/test_injection_sway.py)
    assert run_setter("sway") == [["swaymsg", f"output * bg \"'{IMG}'\" fill"]]
    assert run_setter("macos") == [["osascript", "-e", "on run argv", "-e", "set imagePath to item 1 of argv",
                                    "-e", MACOS_SCRIPT[2], "-e", "end run", str(IMG)]]
    assert 'tell every desktop to set picture to imagePath' in MACOS_SCRIPT[2]
    # Windows: the path is in the child's environment, never in the script (see tests/test_injection.py)
    assert run_setter("windows", mode="tile") == [["powershell", "-NoProfile", "-NonInteractive", "-Command",
                                                   windows_script("tile")]]
    ps = windows_script("tile")
    assert str(IMG) not in ps and "-Name TileWallpaper -Value '1'" in ps


def test_wayland_daemons() -> None:
    assert run_setter("hyprland", procs={"hyprpaper"}) == [
        ["hyprctl", "hyprpaper", "preload", str(IMG)],
        ["hyprctl", "hyprpaper", "wallpaper", f",{IMG}"],
        ["hyprctl", "hyprpaper", "unload", "unused"]]
    assert run_setter("hyprland", procs={"swww-daemon", "hyprpaper"}, binaries={"swww"}) == [
        ["swww", "img", str(IMG), "--resize", "crop"]]
    assert run_setter("sway", procs={"awww-daemon"}, binaries={"awww"}, mode="scale") == [
        ["awww", "img", str(IMG), "--resize", "fit"]]
    with pytest.raises(DesktopError, match="no wallpaper daemon"):
        run_setter("hyprland")


def test_user_command() -> None:
    assert run_setter("command", command=["my-setter", "--image", "{path}", "--uri={uri}"]) == [
        ["my-setter", "--image", str(IMG), f"--uri={URI}"]]
    with pytest.raises(DesktopError, match=r"desktop\.command is empty"):
        run_setter("command")
    with pytest.raises(DesktopError, match=r"unknown desktop\.setter 'bogus'"):
        run_setter("bogus")


def test_real_runner_reports_the_command_output() -> None:
    with pytest.raises(DesktopError) as err:
        run_command([sys.executable, "-c", "import sys; sys.stderr.write('cannot open display'); exit(4)"])
    assert "exit 4" in str(err.value) and "cannot open display" in str(err.value)
    with pytest.raises(DesktopError, match="not found: no-such-setter-binary"):
        run_command(["no-such-setter-binary"])


# --- apply_wallpaper: files -----------------------------------------------------------------------
@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "final.png"
    Image.new("RGB", (16, 8), (10, 20, 30)).save(path)
    return path


def test_apply_without_desktop_copies_and_warns(image: Path, paths: Paths) -> None:
    rec = Recorder()
    result = apply_wallpaper(image, DesktopSettings(), paths, run_id="r1", runner=rec, env={},
                             which=lambda _b: None, processes=set)
    assert result.setter is None and "no desktop detected" in result.detail and rec.calls == []
    assert result.path.parent == paths.wallpapers_dir and result.path.read_bytes() == image.read_bytes()
    assert not [p for p in paths.wallpapers_dir.iterdir() if p.name.endswith(".part")]


def test_apply_uses_new_name_each_time_and_prunes(image: Path, paths: Paths) -> None:
    history = History(paths.history_db)
    settings = DesktopSettings(setter="feh", keep=2)
    made = []
    for i in range(5):
        rec = Recorder()
        result = apply_wallpaper(image, settings, paths, run_id=f"run{i}", runner=rec, env={})
        assert rec.calls == [["feh", "--no-fehbg", "--bg-fill", str(result.path)]]
        assert result.setter == "feh" and result.path not in made
        made.append(result.path)
        history.start_run(f"run{i}", trigger="manual", plan={}, run_dir=None)
        history.finish_run(f"run{i}", status="success", wallpaper=str(result.path))
        os.utime(result.path, (1000 + i, 1000 + i))  # distinct mtimes, oldest first
        if i == 0:
            history.set_favorite("run0", True)
    remaining = sorted(p for p in paths.wallpapers_dir.iterdir() if p.name != OWNED_LIST)
    # kept: the favorite (run0), the newest two (run3 = previous, run4 = current)
    assert remaining == sorted([made[0], made[3], made[4]])
    assert history.previous_wallpaper() == made[3]


def test_failing_setter_is_an_error_but_file_is_kept(image: Path, paths: Paths) -> None:
    rec = Recorder(fail=("feh",))
    with pytest.raises(DesktopError, match="no such thing"):
        apply_wallpaper(image, DesktopSettings(setter="feh"), paths, run_id="x", runner=rec, env={})


def test_setter_none_only_copies(image: Path, paths: Paths) -> None:
    rec = Recorder()
    result = apply_wallpaper(image, DesktopSettings(setter="none"), paths, run_id="n", runner=rec, env={})
    assert rec.calls == [] and result.setter is None and result.path.is_file()
