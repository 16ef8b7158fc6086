"""Portable where claimed: the folders of a non-XDG system come from platformdirs, and the CLI starts
(and plans a run) on a Python without the POSIX-only modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ai_wallpaper.core import paths as paths_module

ENV = ("AI_WALLPAPER_CONFIG_DIR", "AI_WALLPAPER_DATA_DIR", "AI_WALLPAPER_CACHE_DIR", "AI_WALLPAPER_STATE_DIR",
       "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")
KINDS = (("AI_WALLPAPER_CONFIG_DIR", "XDG_CONFIG_HOME", ".config"), ("AI_WALLPAPER_DATA_DIR", "XDG_DATA_HOME",
         ".local/share"), ("AI_WALLPAPER_CACHE_DIR", "XDG_CACHE_HOME", ".cache"),
         ("AI_WALLPAPER_STATE_DIR", "XDG_STATE_HOME", ".local/state"))


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_macos_folders_come_from_platformdirs(bare_env: Path) -> None:
    got = [paths_module._xdg(*kind, platform="darwin") for kind in KINDS]
    support = bare_env / "Library" / "Application Support" / "ai-wallpaper"
    assert got == [support, support, bare_env / "Library" / "Caches" / "ai-wallpaper", support]


def test_windows_folders_come_from_the_known_folders(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs.windows as win

    # The known-folder lookup needs the Windows API; it is the one part faked here.
    local = r"C:\Users\me\AppData\Local"
    monkeypatch.setattr(win, "get_win_folder", lambda csidl: {"CSIDL_LOCAL_APPDATA": local}[csidl])
    got = [str(paths_module._xdg(*kind, platform="win32")) for kind in KINDS]
    assert got[0] == got[1] == got[3] and got[0].startswith(local) and "ai-wallpaper" in got[0]
    assert got[2].startswith(local) and "Cache" in got[2]


def test_xdg_and_our_variables_still_win_everywhere(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(bare_env / "xdg"))
    monkeypatch.setenv("AI_WALLPAPER_DATA_DIR", str(bare_env / "mine"))
    assert paths_module._xdg(*KINDS[0], platform="darwin") == bare_env / "xdg" / "ai-wallpaper"
    assert paths_module._xdg(*KINDS[1], platform="win32") == bare_env / "mine"
    assert paths_module._xdg(*KINDS[2], platform="linux") == bare_env / ".cache" / "ai-wallpaper"


def test_the_cli_starts_and_plans_without_posix_only_modules(paths: object, tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("models: {base: 'builtin:tiny', upscaler: 'builtin:tiny'}\nweather: {enabled: false}\n"
                      "pipeline: {txt2img: {width: 128, height: 64}, enhance: {enabled: false}}\n"
                      "output: {width: 480, height: 270}\n")
    # What Windows lacks and our code could reach (psutil brings its own Windows backend, so its Linux
    # one's needs are not blocked here).
    blocked = "import sys\nfor m in ('fcntl', 'termios'): sys.modules[m] = None\n"
    run = blocked + ("from ai_wallpaper.cli import main\n"
                     f"raise SystemExit(main(['plan', '--config', {str(config)!r}, '--no-weather', '--json']))\n")
    proc = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["base_size"] == {"width": 128, "height": 64}
    helped = subprocess.run([sys.executable, "-c", blocked + "from ai_wallpaper.cli import main\nmain(['--help'])"],
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "ai-wallpaper" in helped.stdout
