"""A scheduled `generate` that a pause or a condition stops: the real CLI in a child process records one
"skipped" row with the reason, exits 0, makes no run folder and leaves the desktop alone; a run the user
asks for goes on. Conditions for real where this machine has them (a fullscreen window on Xvfb); the
GPU through a stand-in nvidia-smi on PATH that records its exact argv (no NVIDIA driver here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.service.job_runner import JobRunner, generate_command
from ai_wallpaper.service.pause import pause
from tests.desktop.test_desktop_real import xvfb  # noqa: F401 - the Xvfb fixture
from tests.service.test_fullscreen import _xprop, window  # noqa: F401 - a real window on it

CLI = [sys.executable, "-m", "ai_wallpaper"]


def _config(tmp_path: Path, **schedule: Any) -> tuple[Path, Path]:
    """Settings that load, with a base model that does not exist: a run that is not skipped fails with
    exit 4 at once, so a test can tell "skipped" from "ran" without rendering. The desktop setter
    is a command that records every call."""
    setter_log = tmp_path / "setter.log"
    setter = f"import sys; open({str(setter_log)!r}, 'a').write(sys.argv[1] + chr(10))"
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({
        "models": {"base": str(tmp_path / "no-such-model.safetensors"), "upscaler": "builtin:tiny"},
        "desktop": {"setter": "command", "command": [sys.executable, "-c", setter, "{path}"]},
        "schedule": {"skip_when": schedule}}))
    return config, setter_log


def _generate(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "generate", "--config", str(config), *args], capture_output=True, text=True,
                          timeout=120, env=env)


def _nothing_painted(paths: Paths, setter_log: Path) -> None:
    assert not paths.runs_dir.exists() or not any(paths.runs_dir.iterdir())
    assert not paths.wallpapers_dir.exists() or not any(paths.wallpapers_dir.iterdir())
    assert not setter_log.exists()
    assert History(paths.history_db).wallpaper_sequence() == []


def test_a_paused_schedule_is_skipped_and_a_manual_run_is_not(paths: Paths, tmp_path: Path) -> None:
    config, setter_log = _config(tmp_path)
    pause(paths.pause_file, timedelta(hours=2))
    history = History(paths.history_db)
    for trigger in ("schedule", "catch-up"):
        done = _generate(config, "--trigger", trigger)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("skipped: paused until ")
    runs = history.list_runs()
    assert [(r.trigger, r.status) for r in runs] == [("catch-up", "skipped"), ("schedule", "skipped")]
    assert all(r.error is not None and r.error.startswith("paused until ") for r in runs)
    assert all(r.finished_at is not None and r.run_dir is None for r in runs)
    _nothing_painted(paths, setter_log)
    table = subprocess.run([*CLI, "history"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert "skipped" in table[1] and "paused until" in table[1]
    shown = subprocess.run([*CLI, "history", "show", runs[0].run_id], capture_output=True, text=True)
    assert shown.returncode == 1 and f"run {runs[0].run_id} was skipped (paused until " in shown.stderr
    latest = subprocess.run([*CLI, "history", "show"], capture_output=True, text=True)
    assert latest.returncode == 1 and "no runs yet" in latest.stderr  # skipped rows are passed over
    # The user asking now is not the schedule: `generate` and `next` go on (and fail on the missing model).
    manual = _generate(config)
    assert manual.returncode == 4 and "models.base" in manual.stderr
    nxt = _generate(config, "--trigger", "next")
    assert nxt.returncode == 4
    assert [r.status for r in history.list_runs()] == ["failed", "skipped", "skipped"]  # manual runs leave no row
    _nothing_painted(paths, setter_log)
    # Resumed: the schedule runs again.
    assert subprocess.run([*CLI, "resume"], capture_output=True, check=True).returncode == 0
    assert _generate(config, "--trigger", "schedule").returncode == 4
    assert history.list_runs()[0].status == "failed"


def test_paused_beats_a_broken_config(paths: Paths, tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("schedule: {skip_when: {gpu_busy_gb: -1}}\n")
    pause(paths.pause_file, None)
    done = _generate(config, "--trigger", "schedule")
    assert done.returncode == 0 and History(paths.history_db).list_runs()[0].status == "skipped"
    paths.pause_file.unlink()
    done = _generate(config, "--trigger", "schedule")  # not paused: the config is read, and refused
    assert done.returncode == 3 and "schedule.skip_when.gpu_busy_gb" in done.stderr
    last = History(paths.history_db).list_runs()[0]
    assert last.status == "failed" and last.error is not None and "gpu_busy_gb" in last.error


def test_a_busy_gpu_skips_the_scheduled_run(paths: Paths, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    argv_log = tmp_path / "nvidia-smi.argv"
    fake = bin_dir / "nvidia-smi"  # the driver's tool, which cannot run here: same argv, same output format
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(argv_log)!r}, 'a').write(json.dumps(sys.argv[1:]) + chr(10))\n"
                    "print('31337, 6144')\nprint('31338, 5120')\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    config, setter_log = _config(tmp_path, gpu_busy_gb=10)
    done = _generate(config, "--trigger", "schedule", env=env)
    assert done.returncode == 0, done.stderr
    reason = "the GPU is busy: other processes hold 11.0 GB (schedule.skip_when.gpu_busy_gb: 10)"
    assert done.stdout.strip() == f"skipped: {reason}"
    [row] = History(paths.history_db).list_runs()
    assert (row.status, row.error, row.trigger) == ("skipped", reason, "schedule")
    assert [json.loads(line) for line in argv_log.read_text().splitlines()] == [
        ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]]
    _nothing_painted(paths, setter_log)
    config, _ = _config(tmp_path, gpu_busy_gb=12)  # 11 GB is not more than 12: the run goes on
    assert _generate(config, "--trigger", "schedule", env=env).returncode == 4


def test_a_fullscreen_window_skips_the_scheduled_run_for_real(paths: Paths, tmp_path: Path,
                                                              window: str) -> None:  # noqa: F811
    config, setter_log = _config(tmp_path, fullscreen=True)
    _xprop("-root", "-f", "_NET_ACTIVE_WINDOW", "32x", "-set", "_NET_ACTIVE_WINDOW", window)
    _xprop("-id", window, "-f", "_NET_WM_STATE", "32a", "-set", "_NET_WM_STATE", "_NET_WM_STATE_FULLSCREEN")
    done = _generate(config, "--trigger", "schedule")
    assert done.returncode == 0 and done.stdout.strip() == "skipped: a fullscreen window is active"
    _nothing_painted(paths, setter_log)
    _xprop("-id", window, "-remove", "_NET_WM_STATE")  # left fullscreen: the next tick runs
    assert _generate(config, "--trigger", "schedule").returncode == 4


def test_the_job_runner_leaves_a_skipped_row_as_it_is(paths: Paths, tmp_path: Path) -> None:
    config, setter_log = _config(tmp_path)
    pause(paths.pause_file, timedelta(minutes=30))
    history = History(paths.history_db)
    runner = JobRunner(history, generate_command(config), timeout_s=120)
    outcome = runner.run("schedule")
    assert outcome is not None and outcome.returncode == 0
    assert outcome.status == "skipped" and outcome.error is not None and outcome.error.startswith("paused until ")
    row = history.get(outcome.run_id)
    assert row is not None and row.status == "skipped" and row.error == outcome.error
    assert history.last_run() == row  # the tick is handled: the daemon's catch-up will not redo it
    _nothing_painted(paths, setter_log)


@pytest.mark.parametrize("trigger", ["schedule", "catch-up"])
def test_dry_run_is_never_skipped(paths: Paths, tmp_path: Path, trigger: str) -> None:
    pause(paths.pause_file, None)
    config = tmp_path / "settings.yaml"
    config.write_text("weather: {enabled: false}\n")
    done = _generate(config, "--trigger", trigger, "--dry-run", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["prompt"]
    assert History(paths.history_db).list_runs() == []
