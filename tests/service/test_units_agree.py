"""The unit `install-service` writes and the shipped copy in systemd/ agree line for line, except for what
install-service fills in: the interpreter in ExecStart= and the user's AI_WALLPAPER_* variables. And the
daemon's unit is `Type=notify` (the daemon sends READY=1 itself: tests/service/test_daemon_notify.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ai_wallpaper.core.paths import Paths
from ai_wallpaper.service.systemd_units import ONESHOT, SERVICE

REPO = Path(__file__).resolve().parents[2]
FILLED_IN = ("ExecStart=", "Environment=AI_WALLPAPER_", "# The AI_WALLPAPER_* variables",
             "# folders and settings file as the shell")


def _common(text: str) -> list[str]:
    return [line for line in text.rstrip("\n").splitlines() if not line.startswith(FILLED_IN)]


def test_installed_and_shipped_units_agree(paths: Paths) -> None:
    out = subprocess.run([sys.executable, "-m", "ai_wallpaper", "install-service", "--print"], capture_output=True,
                         text=True, check=True).stdout
    installed = out.split(f"# --- {SERVICE}\n", 1)[1]
    shipped = (REPO / "systemd" / SERVICE).read_text()
    assert "Environment=AI_WALLPAPER_STATE_DIR=" in installed  # the test's folders are carried
    assert _common(installed) == _common(shipped)
    assert [line for line in shipped.splitlines() if line.startswith(("Type=", "NotifyAccess="))] == [
        "Type=notify", "NotifyAccess=main"]
    timer = subprocess.run([sys.executable, "-m", "ai_wallpaper", "install-service", "--timer", "--print"],
                           capture_output=True, text=True, check=True).stdout
    oneshot = timer.split(f"# --- {ONESHOT}\n", 1)[1].split("# --- ", 1)[0]
    assert _common(oneshot) == _common((REPO / "systemd" / ONESHOT).read_text())
