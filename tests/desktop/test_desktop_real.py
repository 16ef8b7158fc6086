"""The real thing where this machine can run it: GNOME's gsettings (keyfile backend) and feh on Xvfb,
read back from the settings store and from the X root window. scripts/system-deps.sh installs them."""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from ai_wallpaper.config.settings import DesktopSettings
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.desktop import apply_wallpaper


def _require(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:  # fail, not skip: CI runs scripts/system-deps.sh first, so a missing tool is a bug
        pytest.fail(f"missing {', '.join(missing)}: run `sudo bash scripts/system-deps.sh`")


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "final.png"
    Image.new("RGB", (64, 40), (200, 30, 60)).save(path)
    return path


def test_gnome_gsettings_keyfile(image: Path, paths: Paths, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _require("gsettings")
    config_home = tmp_path / "gsettings-home"
    for key, value in {"GSETTINGS_BACKEND": "keyfile", "XDG_CONFIG_HOME": str(config_home),
                       "XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}.items():
        monkeypatch.setenv(key, value)  # detection and the gsettings children see the same env
    env = dict(os.environ)
    result = apply_wallpaper(image, DesktopSettings(mode="zoom"), paths, run_id="g1")
    assert result.setter == "gnome" and "picture-uri-dark" in result.detail

    def get(key: str) -> str:
        return subprocess.run(["gsettings", "get", "org.gnome.desktop.background", key], env=env,
                              capture_output=True, text=True, check=True).stdout.strip()

    uri = result.path.as_uri()
    night = result.path.with_name(result.path.stem + "--night.png")  # desktop.dark: night (the default)
    assert get("picture-uri") == f"'{uri}'" and get("picture-uri-dark") == f"'{night.as_uri()}'"
    with Image.open(night) as dark, Image.open(image) as light:
        assert dark.size == light.size
        assert sum(dark.convert("L").tobytes()) < 0.6 * sum(light.convert("L").tobytes())
    assert get("picture-options") == "'zoom'"
    keyfile = (config_home / "glib-2.0" / "settings" / "keyfile").read_text()
    assert f"picture-uri='{uri}'" in keyfile
    second = apply_wallpaper(image, DesktopSettings(mode="scale", dark="same", lock_screen=True), paths,
                             run_id="g2")
    assert second.path != result.path and get("picture-uri") == f"'{second.path.as_uri()}'"
    assert get("picture-uri-dark") == f"'{second.path.as_uri()}'"
    assert get("picture-options") == "'scaled'"
    lock = subprocess.run(["gsettings", "get", "org.gnome.desktop.screensaver", "picture-uri"], env=env,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert lock == f"'{second.path.as_uri()}'"
    third = apply_wallpaper(image, DesktopSettings(dark="off"), paths, run_id="g3")
    assert get("picture-uri") == f"'{third.path.as_uri()}'"
    assert get("picture-uri-dark") == f"'{second.path.as_uri()}'"  # off: the dark key is left alone


def _read_xwd(data: bytes) -> Image.Image:
    """Decode an `xwd` dump of a 24/32-bit TrueColor window (the format is 25 big-endian CARD32s)."""
    fields = struct.unpack(">25I", data[:100])
    header_size, _ver, _fmt, _depth, width, height = fields[:6]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    red_mask, green_mask, blue_mask, ncolors = fields[14], fields[15], fields[16], fields[19]
    assert bits_per_pixel == 32, f"unexpected xwd depth {bits_per_pixel}"
    pixels = data[header_size + 12 * ncolors:]
    endian = "<" if byte_order == 0 else ">"
    shifts = [(m, (m & -m).bit_length() - 1) for m in (red_mask, green_mask, blue_mask)]
    rgb: list[tuple[int, ...]] = []
    for y in range(height):
        row = struct.unpack(f"{endian}{width}I", pixels[y * bytes_per_line:y * bytes_per_line + 4 * width])
        rgb.extend(tuple((p & m) >> s for m, s in shifts) for p in row)
    img = Image.new("RGB", (width, height))
    img.putdata(rgb)
    return img


@contextlib.contextmanager
def running_xvfb(display: str, size: str) -> Iterator[str]:
    """A real Xvfb on `display` with one screen of `size` (WxH), stopped afterwards."""
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", f"{size}x24", "-nolisten", "tcp", "-noreset"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{display[1:]}")
    deadline = time.monotonic() + 10
    while not socket.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert socket.exists(), "Xvfb did not start"
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def xvfb() -> Iterator[str]:
    _require("Xvfb", "xwd", "feh")
    with running_xvfb(f":{90 + os.getpid() % 400}", "160x100") as display:
        yield display


def test_feh_on_xvfb_root_window(image: Path, paths: Paths, xvfb: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("XDG_CURRENT_DESKTOP", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION", "GDMSESSION",
                "WAYLAND_DISPLAY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DISPLAY", xvfb)
    # auto: no desktop, no session, no wallpaper daemon → the feh binary on X11
    result = apply_wallpaper(image, DesktopSettings(mode="fill"), paths, run_id="x1", processes=set)
    assert result.setter == "feh"
    dump = subprocess.run(["xwd", "-root", "-silent", "-display", xvfb], capture_output=True,
                          check=True).stdout
    root = _read_xwd(dump)
    assert root.size == (160, 100)
    colors = root.getcolors(maxcolors=4)
    assert colors == [(160 * 100, (200, 30, 60))]  # the whole screen is our picture (stretched)
