"""Bookkeeping survives faults: every run's history row ends success, failed (with the human reason)
or cancelled — when the daemon is killed -9 mid-run, when the child fails before recording, when
`next` is interrupted, when a timer-started run fails before it starts; and the daemon cleans up the
temp files a crash leaves.

Real processes throughout: the daemon and `next` as subprocesses, the real `generate` on the built-in
tiny model (enhancement off, tiny sizes) where it matters, the FAKE_JOB script elsewhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_wallpaper.core import atomic
from ai_wallpaper.core.history import History, RunRecord
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.core.run_liveness import pid_alive
from ai_wallpaper.service.daemon import STALE_TEMP_AGE_S
from ai_wallpaper.service.job_runner import JobRunner, failure_reason, last_plain_line, reported_error
from tests.render.test_pipeline import SMALL
from tests.service.test_daemon import FAKE_JOB, JOB_SWAP, DaemonProcess, wait_for

FINAL = {"success", "failed", "cancelled"}
FAST: dict[str, Any] = {**SMALL, "models": {**SMALL["models"], "device": "cpu"},
                        "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False}}}
CLI = [sys.executable, "-m", "ai_wallpaper"]


@pytest.fixture
def real_models(paths_with_models: Paths, tiny_sdxl_dir: Path, tiny_upscaler_file: Path) -> Paths:
    """Paths whose (shared) cache already holds the built-in models: the children never build them."""
    return paths_with_models


def final_record(history: History, run_id: str, timeout: float) -> RunRecord:
    def done() -> RunRecord | None:
        rec = history.get(run_id)
        return rec if rec is not None and rec.status in FINAL else None

    record: RunRecord = wait_for(done, timeout, f"run {run_id} to end")
    return record


# --- kill -9 of the daemon mid-run ---------------------------------------------------------------
def test_daemon_killed_mid_run_leaves_the_run_to_finish_and_record(
        daemons: Callable[..., DaemonProcess], real_models: Paths) -> None:
    d = daemons({"interval_seconds": 1, "timezone": "UTC"}, job=False, extra_settings=FAST)
    d.wait_started()
    run = wait_for(lambda: [r for r in d.runs() if r.status == "running"], 60, "the real run to start")[0]
    child = run.pid
    assert child is not None and child != d.proc.pid
    d.proc.kill()
    assert d.proc.wait(timeout=10) == -signal.SIGKILL
    d.log_fh.close()
    assert pid_alive(child)  # its own session: the child outlives the daemon
    # A new daemon while the orphan still works: it fails nothing that is alive and starts nothing
    # beside it (one generation at a time), although its schedule fires every second.
    again = daemons({"interval_seconds": 1, "timezone": "UTC"}, job=False, extra_settings=FAST,
                    stop_grace=5)
    again.wait_started()
    # Its output pipe has no reader any more: logging and the final prints meet EPIPE; nothing hangs.
    record = final_record(d.history, run.run_id, 120)
    assert (record.status, record.error) == ("success", None)
    assert record.outputs and all(Path(p).is_file() for p in record.outputs.values())
    wait_for(lambda: not pid_alive(child), 20, "the orphaned child to exit")
    assert record.finished_at is not None
    later = [r for r in again.runs() if r.run_id != run.run_id]
    assert all(r.started_at >= record.finished_at for r in later)
    assert any(e.get("event") == "another run is still in progress; not starting one now"
               and e.get("other_run") == run.run_id for e in again.log_lines())
    # Stop it (its own run, if one began, is cancelled): no row is left "running".
    assert again.stop(timeout=30) == 0
    runs = again.runs()
    assert {r.status for r in runs} <= FINAL
    assert all(r.error for r in runs if r.status == "cancelled")


def test_a_run_killed_with_its_daemon_is_failed_at_the_next_start(
        daemons: Callable[..., DaemonProcess], paths: Paths) -> None:
    # systemd's KillMode=mixed SIGKILLs the rest of the unit when the daemon dies: the child goes too.
    d = daemons({"interval_seconds": 1, "timezone": "UTC"})
    d.queue("hang")
    d.wait_started()
    run = wait_for(lambda: d.runs(), 20, "a run")[0]
    child = int(wait_for(lambda: [p.read_text() for p in d.control.glob(f"started-{run.run_id}")], 10,
                         "the child")[0])
    d.proc.kill()
    d.proc.wait(timeout=10)
    d.log_fh.close()
    os.kill(child, signal.SIGKILL)
    wait_for(lambda: not pid_alive(child), 10, "the child to die")
    left = d.history.get(run.run_id)
    assert left is not None and left.status == "running"  # nobody left to say otherwise
    again = daemons({"cron": "0 7 * * *", "timezone": "UTC", "catch_up": False})
    again.wait_started()
    rec = again.history.get(run.run_id)
    assert rec is not None and rec.status == "failed" and rec.error and "gone" in rec.error
    assert again.stop() == 0
    assert {r.status for r in again.runs()} <= FINAL


# --- the child's own error message -----------------------------------------------------------------
def test_child_error_parsing() -> None:
    logs = [json.dumps({"event": "loading", "level": "info"}),
            "2026-01-01T07:00:00.1 [info     ] console log line",
            "error: 2 config problem(s):", "  - a: bad", "  - b: worse", "  hint: fix them",
            json.dumps({"event": "late", "level": "info"})]
    assert reported_error(logs) == "2 config problem(s):\n  - a: bad\n  - b: worse\n  hint: fix them"
    assert reported_error(logs[:2]) is None
    warning = "/x/diffusers/y.py:12: FutureWarning: deprecated"
    assert last_plain_line(["Traceback (most recent call last):", '  File "x", line 1',
                            "ModuleNotFoundError: No module named 'torch'", warning, "    warn()",
                            logs[0]]) == "ModuleNotFoundError: No module named 'torch'"
    assert failure_reason(3, ["config problem: steps"]) == \
        "generation process exited with exit code 3: config problem: steps"
    assert failure_reason(1, [logs[0]]) == "generation process exited with exit code 1 without an error message"
    assert failure_reason(-9, logs).startswith("generation process was killed by signal SIGKILL")


def test_real_generate_failing_before_its_run_is_recorded_by_the_daemon(
        daemons: Callable[..., DaemonProcess], paths: Paths, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-upscaler.pth"
    settings = {**FAST, "models": {"base": "builtin:tiny", "upscaler": str(missing), "device": "cpu"}}
    d = daemons({"interval_seconds": 1, "timezone": "UTC"}, job=False, extra_settings=settings)
    d.wait_started()
    failed = wait_for(lambda: [r for r in d.runs() if r.status == "failed"], 60, "the failed run")[0]
    assert d.stop() == 0
    assert failed.error is not None
    first, *rest = failed.error.splitlines()
    assert first == f"models.upscaler: '{missing}' was not found (tried: {missing})"
    assert rest and rest[-1].startswith("  hint: download RealESRGAN_x4plus.pth")
    status = subprocess.run([*CLI, "status", "--config", str(d.config)], capture_output=True, text=True,
                            check=True).stdout
    assert f"  error: {first}\n" in status and "exit code" not in status and "{" not in status


# --- `next` without a daemon, interrupted -----------------------------------------------------------
def start_next(tmp_path: Path, paths: Paths, settings: dict[str, Any], *behaviours: str,
               fake: bool = True) -> subprocess.Popen[str]:
    control = tmp_path / "control"
    control.mkdir(exist_ok=True)
    (control / "queue").write_text("\n".join(behaviours))
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(settings))
    job = ""
    if fake:
        script = tmp_path / "fake_job.py"
        script.write_text(FAKE_JOB)
        job = json.dumps([sys.executable, str(script), "--run-id", "{run_id}", "--trigger", "{trigger}"])
    argv = [sys.executable, str(JOB_SWAP), job, "", "next", "--config", str(config), "--log-format", "json"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "FAKE_JOB_CONTROL": str(control)})


@pytest.mark.parametrize(("behaviour", "presses", "status", "error"), [
    ("hang", 1, "cancelled", "cancelled by signal"),  # the child records its own cancel
    ("sleep-early", 1, "cancelled", "cancelled: interrupted by Ctrl-C"),  # no row yet: `next` writes it
    ("ignore-term", 2, "cancelled", "cancelled: interrupted by Ctrl-C; killed (SIGKILL) on a second request"),
])
def test_ctrl_c_on_next_cancels_the_run(tmp_path: Path, paths: Paths, behaviour: str, presses: int,
                                        status: str, error: str) -> None:
    proc = start_next(tmp_path, paths, {}, behaviour)
    try:
        started = wait_for(lambda: list((tmp_path / "control").glob("started-*")), 20, "the child")[0]
        run_id, child = started.name.removeprefix("started-"), int(started.read_text())
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    rec = History(paths.history_db).get(run_id)
    assert rec is not None and (rec.status, rec.error, rec.trigger) == (status, error, "next")
    assert f"run {run_id}: cancelled" in out
    assert not pid_alive(child)


def test_ctrl_c_on_next_with_the_real_generate(tmp_path: Path, real_models: Paths) -> None:
    proc = start_next(tmp_path, real_models, FAST, fake=False)
    history = History(real_models.history_db)
    try:
        run = wait_for(lambda: [r for r in history.list_runs() if r.status == "running"], 60, "the run")[0]
        time.sleep(0.5)  # past the instant between its row and its SIGTERM handler
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    rec = history.get(run.run_id)
    assert rec is not None and (rec.status, rec.error) == ("cancelled", "cancelled by signal")
    assert f"run {run.run_id}: cancelled" in out


# --- a timer run (`generate --trigger schedule`) failing before it starts --------------------------------
def test_scheduled_generate_that_fails_before_its_run_leaves_a_failed_row(paths: Paths, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model.safetensors"
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({**FAST, "models": {"base": str(missing), "upscaler": "builtin:tiny"}}))
    done = subprocess.run([*CLI, "generate", "--config", str(config), "--trigger", "schedule"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 4 and "error: models.base:" in done.stderr
    runs = History(paths.history_db).list_runs()
    assert len(runs) == 1 and runs[0].trigger == "schedule" and runs[0].status == "failed"
    assert runs[0].error is not None and runs[0].error.startswith("models.base:") and str(missing) in runs[0].error
    status = subprocess.run([*CLI, "status", "--config", str(config)], capture_output=True, text=True,
                            check=True).stdout
    assert "(schedule)" in status and ": failed" in status and "  error: models.base:" in status
    # A manual run's failure is for the terminal only: no row.
    subprocess.run([*CLI, "generate", "--config", str(config)], capture_output=True, timeout=60)
    assert len(History(paths.history_db).list_runs()) == 1


# --- timeouts ----------------------------------------------------------------------------------------
def test_a_timed_out_run_is_failed_even_if_its_child_says_cancelled(tmp_path: Path, paths: Paths,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    control = tmp_path / "control"
    control.mkdir()
    (control / "queue").write_text("hang")
    script = tmp_path / "fake_job.py"
    script.write_text(FAKE_JOB)
    monkeypatch.setenv("FAKE_JOB_CONTROL", str(control))
    history = History(paths.history_db)
    runner = JobRunner(history, [sys.executable, str(script), "--run-id", "{run_id}", "--trigger", "{trigger}"],
                       timeout_s=3, stop_grace_s=5)
    outcome = runner.run("schedule")
    assert outcome is not None and outcome.status == "failed"
    assert outcome.error is not None and outcome.error.startswith("timed out after")
    rec = history.get(outcome.run_id)
    assert rec is not None and (rec.status, rec.error) == ("failed", outcome.error)


# --- stale temp files ----------------------------------------------------------------------------------
def test_daemon_start_removes_only_its_own_stale_temp_files(daemons: Callable[..., DaemonProcess],
                                                             paths: Paths) -> None:
    old = time.time() - 2 * 3600

    def make(path: Path, *, age: float | None = old, folder: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if folder else path.write_bytes(b"x")
        if age is not None:
            os.utime(path, (age, age))
        return path

    gone = [make(paths.state_dir / ".history.sqlite3.a1b2c3d4.part"),
            make(paths.wallpapers_dir / ".wallpaper-1.png.zz_9qk0t.part"),
            make(paths.cache_dir / ".lora-sha256.json.0123abcd.part")]
    target = make(paths.data_dir / "precious.txt")
    kept = [make(paths.state_dir / ".daemon.json.fresh123.part", age=None),  # a write in progress
            make(paths.builtin_models_dir / ".model.safetensors.a1b2c3d4.part"),  # not recursive
            make(paths.runs_dir / ".run.json.a1b2c3d4.part"),  # not one of the three folders
            make(paths.data_dir / ".settings.yaml.a1b2c3d4.part"),
            make(paths.state_dir / "notes.part"), make(paths.state_dir / ".x.part"),  # not our pattern
            make(paths.state_dir / ".dir.a1b2c3d4.part", folder=True), target]
    link = paths.cache_dir / ".link.a1b2c3d4.part"
    link.symlink_to(target)
    os.utime(link, (old, old), follow_symlinks=False)
    d = daemons({"cron": "0 7 * * *", "timezone": "UTC", "catch_up": False})
    d.wait_started()
    assert d.stop() == 0
    assert not any(p.exists() for p in gone)
    assert all(p.exists() for p in kept) and link.is_symlink() and target.read_bytes() == b"x"
    logged = {e["path"] for e in d.log_lines() if e.get("event") == "removed a stale temp file"}
    assert logged == {str(p) for p in gone}


def test_remove_stale_temp_files_age_threshold(tmp_path: Path) -> None:
    file = tmp_path / ".a.json.abcdefgh.part"
    file.write_text("{}")
    mtime = file.stat().st_mtime
    foreign = tmp_path / ".a.json.abcdefgh.parts"  # not our pattern: never touched
    foreign.write_text("mine")
    assert atomic.remove_stale_temp_files(tmp_path / "missing", older_than_s=STALE_TEMP_AGE_S) == []
    assert atomic.remove_stale_temp_files(tmp_path, older_than_s=STALE_TEMP_AGE_S, now=mtime + 3599) == []
    assert atomic.remove_stale_temp_files(tmp_path, targets={"b.json"}, now=mtime + 3601) == []
    assert atomic.remove_stale_temp_files(tmp_path, older_than_s=STALE_TEMP_AGE_S, now=mtime + 3601) == [file]
    assert foreign.read_text() == "mine"
    assert not file.exists()
