"""Portable where claimed: the folders of a non-XDG system come from platformdirs, and the CLI starts
(and plans a run) on a Python without the POSIX-only modules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
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


# --- the daemon and its service modules where POSIX-only names are missing -------------------------
# What Windows (and for AF_UNIX, older Windows Pythons) lacks of the names the service code could reach.
# psutil's Linux backend (Windows has its own) is imported before they go.
NAMES_GONE = "import os, signal, socket, sys, psutil\ndel signal.SIGUSR1, os.killpg, socket.AF_UNIX\n"
NO_POSIX = NAMES_GONE + "for m in ('fcntl', 'termios'): sys.modules[m] = None\n"


def test_the_service_modules_import_and_stop_a_child_without_posix_names(paths: object, tmp_path: Path) -> None:
    script = NO_POSIX + textwrap.dedent("""
        import json, subprocess, sys, threading, time
        from pathlib import Path
        from ai_wallpaper.cli import build_parser
        from ai_wallpaper.commands import daemon_cmd, status_cmd, service_cmd
        from ai_wallpaper.core.history import History
        from ai_wallpaper.core.paths import Paths
        from ai_wallpaper.service import daemon, job_runner, lock, systemd_units
        from ai_wallpaper.service.sd_notify import Notifier

        assert not Notifier("@ai-wallpaper").enabled and not Notifier("").notify("READY=1")
        build_parser().format_help()
        # the runner stops a hanging child without process groups: terminate(), then kill()
        runner = job_runner.JobRunner(History(Paths.from_env().history_db),
                                      [sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=60,
                                      stop_grace_s=5)
        threading.Timer(1.0, runner.request_stop, args=("test stop",)).start()
        started = time.monotonic()
        outcome = runner.run("next", "run-portable")
        print(json.dumps({"status": outcome.status, "error": outcome.error,
                          "seconds": time.monotonic() - started}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["status"] == "cancelled" and result["error"] == "cancelled: test stop"
    assert result["seconds"] < 5  # SIGTERM reached it: the grace period did not run out


def test_the_daemon_runs_without_sigusr1_and_next_says_so(paths: object, tmp_path: Path) -> None:
    from tests.service.test_daemon import JOB_SWAP, wait_for

    config = tmp_path / "settings.yaml"
    config.write_text("schedule: {cron: '0 7 * * *', timezone: UTC, catch_up: false}\n")
    state = tmp_path / "xdg" / "state" / "daemon.json"
    # The lock needs fcntl here (msvcrt on Windows): only the names are taken away.
    start = NAMES_GONE + (f"import runpy\nsys.argv = [{str(JOB_SWAP)!r}, '', '', 'daemon', '--config', "
                        f"{str(config)!r}]\nrunpy.run_path({str(JOB_SWAP)!r}, run_name='__main__')\n")
    daemon = subprocess.Popen([sys.executable, "-c", start], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        wait_for(lambda: state.exists() and json.loads(state.read_text())["pid"] == daemon.pid, 30, "the daemon")
        ask = NAMES_GONE + (
            "from ai_wallpaper.cli import main\n"
            f"raise SystemExit(main(['next', '--config', {str(config)!r}]))\n")
        proc = subprocess.run([sys.executable, "-c", ask], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert f"asking the running daemon (pid {daemon.pid}) for a run needs SIGUSR1" in proc.stderr
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert json.loads(state.read_text())["status"] == "stopped"
