"""systemd units: shipped copies match the renderer, every directive is commented, systemd-analyze
verifies what `install-service` writes, and cron lines convert to valid OnCalendar expressions."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ai_wallpaper.commands.daemon_cmd import ONESHOT, SERVICE, TIMER, on_calendar, render_units
from ai_wallpaper.errors import ConfigError
from ai_wallpaper.paths import Paths
from ai_wallpaper.settings import ScheduleSettings, Settings

REPO = Path(__file__).resolve().parents[1]
SHIPPED_EXEC = "%h/.local/bin/ai-wallpaper"


def _analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.fail("systemd-analyze missing: run `sudo bash scripts/system-deps.sh`")
    return binary


def test_shipped_units_are_the_rendered_ones() -> None:
    for name, text in render_units(SHIPPED_EXEC, Settings().schedule).items():
        assert (REPO / "systemd" / name).read_text() == text, f"systemd/{name} is stale: re-render it"


@pytest.mark.parametrize("name", [SERVICE, TIMER, ONESHOT])
def test_every_directive_is_commented(name: str) -> None:
    lines = (REPO / "systemd" / name).read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), f"{name}: no comment above {line!r}"


def test_service_directives() -> None:
    text = (REPO / "systemd" / SERVICE).read_text()
    for directive in ("PartOf=graphical-session.target", "After=graphical-session.target",
                      "Restart=on-failure", "Nice=19", "CPUSchedulingPolicy=batch", "IOSchedulingClass=idle",
                      "KillMode=mixed",
                      "TimeoutStopSec=60", "WantedBy=graphical-session.target"):
        assert f"\n{directive}\n" in text


def test_install_service_writes_units_that_verify(tmp_path: Path, paths: Paths) -> None:
    analyze = _analyze()
    env_home = tmp_path / "home-config"
    cfg = tmp_path / "my settings.yaml"
    cfg.write_text("schedule:\n  cron: '*/30 8-22 * * 1-5'\n  timezone: Europe/Lisbon\n"
                   "  jitter_seconds: 60\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(env_home)}
    for timer in (False, True):
        out = subprocess.run([sys.executable, "-m", "ai_wallpaper", "install-service", "--config",
                              str(cfg), *(["--timer"] if timer else [])],
                             env=env, capture_output=True, text=True, check=True).stdout
        assert "systemctl --user daemon-reload" in out
        assert f"systemctl --user enable --now {TIMER if timer else SERVICE}" in out
        assert "systemctl --user import-environment WAYLAND_DISPLAY" in out
    unit_dir = env_home / "systemd" / "user"
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted([SERVICE, TIMER, ONESHOT])
    service = (unit_dir / SERVICE).read_text()
    assert f'ExecStart={sys.executable} -m ai_wallpaper daemon --config "{cfg}"\n' in service
    timer_text = (unit_dir / TIMER).read_text()
    assert "OnCalendar=Mon..Fri *-*-* 8..22:0/30:00 Europe/Lisbon\n" in timer_text
    assert "RandomizedDelaySec=60s\n" in timer_text
    proc = subprocess.run([analyze, "verify", *(str(unit_dir / n) for n in (SERVICE, ONESHOT, TIMER))],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("cron", "expected"), [
    ("0 7 * * *", "*-*-* 7:0:00"),
    ("*/15 * * * *", "*-*-* *:0/15:00"),
    ("30 6 1 */2 *", "*-1/2-1 6:30:00"),
    ("0 9 * * 0,6", "Sun,Sat *-*-* 9:0:00"),
])
def test_cron_to_on_calendar(cron: str, expected: str) -> None:
    line = on_calendar(ScheduleSettings(cron=cron))
    assert line == f"OnCalendar={expected}"
    analyze = _analyze()
    proc = subprocess.run([analyze, "calendar", expected], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_interval_and_unconvertible_cron() -> None:
    assert on_calendar(ScheduleSettings(interval_minutes=90)) == "OnActiveSec=5400s\nOnUnitActiveSec=5400s"
    with pytest.raises(ConfigError, match="ORs"):
        on_calendar(ScheduleSettings(cron="0 7 1 * 1"))
