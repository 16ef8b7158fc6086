"""The daemon as a real subprocess: scheduling, failures, SIGTERM, lock, catch-up, status.

Most tests swap the generation child for a small job script (tests/job_swap.py) that behaves like `generate` (records
its history row, honours SIGTERM) but can be told to fail, hang, die or ignore SIGTERM. The last
test runs the real `generate` on the built-in tiny model.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_wallpaper.config.settings import ScheduleSettings
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.history import History, RunRecord
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.service.daemon import build_trigger, describe_schedule, missed_run
from ai_wallpaper.service.lock import lock_holder

JOB_SWAP = Path(__file__).parents[1] / "job_swap.py"
FAKE_JOB = textwrap.dedent("""
    import json, os, signal, sys, time
    from pathlib import Path
    from ai_wallpaper.core.history import History
    from ai_wallpaper.core.paths import Paths

    args = sys.argv[1:]
    run_id, trigger = args[args.index("--run-id") + 1], args[args.index("--trigger") + 1]
    control = Path(os.environ["FAKE_JOB_CONTROL"])
    queue = control / "queue"
    lines = queue.read_text().split() if queue.exists() else []
    behaviour = lines[0] if lines else "ok"
    queue.write_text("\\n".join(lines[1:]))
    if behaviour == "crash-early":
        print("config problem: pipeline.txt2img.steps: must be >= 1", file=sys.stderr)
        sys.exit(3)
    if behaviour == "log-then-error":  # like the CLI failing before its run started: logs, then error + hint
        for step in range(3):
            print(json.dumps({"event": f"step {step}", "level": "info"}), file=sys.stderr, flush=True)
        print("error: something human\\n  hint: do the human thing", file=sys.stderr, flush=True)
        print(json.dumps({"event": "late line", "level": "info"}), file=sys.stderr, flush=True)
        sys.exit(5)
    if behaviour == "sleep-early":  # still loading: no row yet, dies of SIGTERM's default action
        (control / f"started-{run_id}").write_text(str(os.getpid()))
        time.sleep(600)
    history = History(Paths.from_env().history_db)
    history.start_run(run_id, trigger=trigger, plan={"theme": {"key": behaviour}}, run_dir=None)

    def on_term(*_):
        history.finish_run(run_id, status="cancelled", error="cancelled by signal")
        sys.exit(130)

    signal.signal(signal.SIGTERM, signal.SIG_IGN if behaviour == "ignore-term" else on_term)
    (control / f"started-{run_id}").write_text(str(os.getpid()))
    if behaviour in ("hang", "ignore-term"):
        time.sleep(600)
    if behaviour == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if behaviour == "fail":
        history.finish_run(run_id, status="failed", error="boom")
        print("error: boom", file=sys.stderr)
        sys.exit(5)
    history.finish_run(run_id, status="success", wallpaper=None)
""")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class DaemonProcess:
    def __init__(self, tmp: Path, paths: Paths, schedule: dict[str, Any], *, job: bool = True,
                 extra_settings: dict[str, Any] | None = None, stop_grace: float = 5.0) -> None:
        self.paths = paths
        self.control = tmp / "control"
        self.control.mkdir(exist_ok=True)
        self.config = tmp / "settings.yaml"
        self.config.write_text(yaml.safe_dump({"schedule": schedule, **(extra_settings or {})}))
        self.log = tmp / f"daemon-{time.monotonic_ns()}.log"
        job_argv = ""
        if job:
            script = tmp / "fake_job.py"
            script.write_text(FAKE_JOB)
            job_argv = json.dumps([sys.executable, str(script), "--run-id", "{run_id}", "--trigger", "{trigger}"])
        argv = [sys.executable, str(JOB_SWAP), job_argv, str(stop_grace),
                "daemon", "--config", str(self.config), "--log-format", "json"]
        env = {**os.environ, "FAKE_JOB_CONTROL": str(self.control)}
        self.log_fh = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self.log_fh, stderr=subprocess.STDOUT, env=env)
        self.history = History(paths.history_db)

    def queue(self, *behaviours: str) -> None:
        (self.control / "queue").write_text("\n".join(behaviours))

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.paths.daemon_state.read_text())
        except (OSError, ValueError):
            return {}
        return data if data.get("pid") == self.proc.pid else {}

    def wait_started(self, timeout: float = 20) -> dict[str, Any]:
        state: dict[str, Any] = wait_for(lambda: self.proc.poll() is None and self.state(), timeout,
                                         "daemon state file")
        return state

    def runs(self) -> list[RunRecord]:
        return list(reversed(self.history.list_runs(1000)))  # oldest first

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log_fh.close()
        return rc

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


# --- schedule helpers (pure) --------------------------------------------------------------------
def test_crontab_weekdays_follow_cron_not_apscheduler_numbering() -> None:
    # 2026-11-27 is a Friday. "1-5" is Monday..Friday in crontab; APScheduler 3 alone would read Tue..Sat.
    friday = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    weekdays = build_trigger(ScheduleSettings(cron="0 7 * * 1-5", timezone="UTC"))
    assert weekdays.get_next_fire_time(None, friday) == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # Monday
    sunday = build_trigger(ScheduleSettings(cron="30 6 * * 0", timezone="UTC"))
    assert sunday.get_next_fire_time(None, friday) == datetime(2026, 11, 29, 6, 30, tzinfo=UTC)
    seven = build_trigger(ScheduleSettings(cron="30 6 * * 7", timezone="UTC"))
    assert seven.get_next_fire_time(None, friday) == datetime(2026, 11, 29, 6, 30, tzinfo=UTC)


def test_cron_time_zone_is_explicit() -> None:
    trigger = build_trigger(ScheduleSettings(cron="0 7 * * *", timezone="Asia/Tokyo"))
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 27, 0, 0, tzinfo=UTC))
    assert fire.utcoffset() == timedelta(hours=9) and fire.hour == 7
    assert fire.astimezone(UTC) == datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
    assert "Asia/Tokyo" in describe_schedule(ScheduleSettings(cron="0 7 * * *", timezone="Asia/Tokyo"))


def test_interval_and_jitter() -> None:
    trigger = build_trigger(ScheduleSettings(interval_minutes=15, jitter_seconds=30, timezone="UTC"))
    assert trigger.interval == timedelta(minutes=15) and trigger.jitter == 30
    seconds_win = build_trigger(ScheduleSettings(interval_seconds=1, interval_minutes=15))
    assert seconds_win.interval == timedelta(seconds=1)


@pytest.mark.parametrize(("schedule", "message"), [
    (ScheduleSettings(timezone="Mars/Olympus"), "schedule.timezone"),
    (ScheduleSettings(cron="0 7 * *"), "5 fields"),
    (ScheduleSettings(cron="61 7 * * *"), "schedule.cron"),
    (ScheduleSettings(cron=None), "no cron"),
])
def test_bad_schedule_is_a_config_error(schedule: ScheduleSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_trigger(schedule)


def test_missed_run_detection() -> None:
    daily = ScheduleSettings(cron="0 7 * * *", timezone="UTC")
    last = datetime(2026, 11, 25, 7, 0, 5, tzinfo=UTC)
    assert missed_run(daily, last, datetime(2026, 11, 26, 6, 59, tzinfo=UTC)) is None
    assert missed_run(daily, last, datetime(2026, 11, 27, 9, 0, tzinfo=UTC)) == datetime(2026, 11, 26, 7, 0,
                                                                                        tzinfo=UTC)
    hourly = ScheduleSettings(interval_minutes=60, timezone="UTC")
    assert missed_run(hourly, last, last + timedelta(minutes=59)) is None
    assert missed_run(hourly, last, last + timedelta(minutes=61)) == last + timedelta(minutes=60)


# --- the real daemon process --------------------------------------------------------------------
def test_daemon_runs_survives_failures_and_stops_on_sigterm(daemons: Callable[..., DaemonProcess]) -> None:
    d = daemons({"interval_seconds": 1, "timezone": "UTC"}, stop_grace=5)
    d.queue("ok", "fail", "die", "crash-early", "ok", "hang")
    d.wait_started()
    hang = wait_for(lambda: [r for r in d.runs() if r.theme_key == "hang"], 40, "the sixth run to start")[0]
    wait_for(lambda: list(d.control.glob(f"started-{hang.run_id}")), 10, "the hanging job to be ready")
    state = d.state()
    assert state["current_run_id"] == hang.run_id and state["next_run_time"]
    t0 = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - t0 < 10
    runs = d.runs()
    assert [(r.status, r.trigger) for r in runs] == [("success", "schedule"), ("failed", "schedule"),
                                                    ("failed", "schedule"), ("failed", "schedule"),
                                                    ("success", "schedule"), ("cancelled", "schedule")]
    assert runs[1].error == "boom"
    assert runs[2].error is not None and "signal SIGKILL" in runs[2].error
    assert runs[3].error is not None and "exit code 3" in runs[3].error and "config problem" in runs[3].error
    assert runs[5].error == "cancelled by signal"
    # one job at a time: no run started before the previous one finished
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and before.finished_at <= after.started_at
    assert lock_holder(d.paths.daemon_lock) is None
    assert json.loads(d.paths.daemon_state.read_text())["status"] == "stopped"
    # every line the daemon logged about a run carries that run's id
    run_lines = [e for e in d.log_lines() if e.get("event") in ("run starting", "run finished")]
    assert {e["run_id"] for e in run_lines} == {r.run_id for r in runs}


def test_sigterm_kills_a_child_that_ignores_it(daemons: Callable[..., DaemonProcess]) -> None:
    d = daemons({"interval_seconds": 1, "timezone": "UTC"}, stop_grace=1)
    d.queue("ignore-term")
    d.wait_started()
    run = wait_for(lambda: d.runs(), 20, "a run")[0]
    child_pid = int(wait_for(lambda: [p.read_text() for p in d.control.glob(f"started-{run.run_id}")], 10,
                             "the child")[0])
    t0 = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - t0 < 6
    rec = d.history.get(run.run_id)
    assert rec is not None and rec.status == "cancelled" and rec.error and "SIGKILL" in rec.error
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)


def test_second_daemon_refuses_to_start(daemons: Callable[..., DaemonProcess], paths: Paths) -> None:
    first = daemons({"cron": "0 7 * * *", "timezone": "UTC"})
    first.wait_started()
    second = daemons({"cron": "0 7 * * *", "timezone": "UTC"})
    assert second.proc.wait(timeout=20) == 7
    second.log_fh.close()
    assert f"pid {first.proc.pid}" in second.log.read_text()
    assert first.proc.poll() is None and lock_holder(paths.daemon_lock) == first.proc.pid
    status = subprocess.run([sys.executable, "-m", "ai_wallpaper", "status", "--config", str(first.config)],
                            capture_output=True, text=True, check=True).stdout
    assert f"running (pid {first.proc.pid})" in status and "next run: 20" in status
    assert first.stop() == 0
    status = subprocess.run([sys.executable, "-m", "ai_wallpaper", "status", "--config", str(first.config)],
                            capture_output=True, text=True, check=True).stdout
    assert "daemon: not running" in status


def test_missed_run_is_caught_up_once(daemons: Callable[..., DaemonProcess], paths: Paths) -> None:
    history = History(paths.history_db)
    history.start_run("old", trigger="schedule", plan={}, run_dir=None)
    history.finish_run("old", status="success")
    with sqlite3.connect(paths.history_db) as db:  # pretend it ran two days ago
        db.execute("UPDATE runs SET started_at = started_at - 172800, finished_at = finished_at - 172800")
    schedule = {"cron": "0 7 * * *", "timezone": "UTC"}
    d = daemons(schedule)
    d.wait_started()
    caught = wait_for(lambda: [r for r in d.runs() if r.run_id != "old" and r.status != "running"], 20,
                      "the catch-up run")
    time.sleep(1.5)  # give a (wrong) second catch-up time to happen
    assert d.stop() == 0
    assert [(r.trigger, r.status) for r in d.runs() if r.run_id != "old"] == [("catch-up", "success")]
    assert caught[0].trigger == "catch-up"
    again = daemons(schedule)  # nothing was missed since: no catch-up now
    again.wait_started()
    time.sleep(1.5)
    assert again.stop() == 0
    assert len(again.runs()) == 2


def test_daemon_start_fails_stale_running_rows(daemons: Callable[..., DaemonProcess], paths: Paths) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    History(paths.history_db).start_run("orphan", trigger="schedule", plan={}, run_dir=None, pid=dead.pid)
    d = daemons({"cron": "0 7 * * *", "timezone": "UTC", "catch_up": False})
    d.wait_started()
    rec = d.history.get("orphan")
    assert rec is not None and rec.status == "failed" and rec.error and "gone" in rec.error
    assert d.stop() == 0
    assert len(d.runs()) == 1


def test_next_asks_the_running_daemon(daemons: Callable[..., DaemonProcess]) -> None:
    d = daemons({"cron": "0 7 * * *", "timezone": "UTC", "catch_up": False})
    d.wait_started()
    out = subprocess.run([sys.executable, "-m", "ai_wallpaper", "next", "--config", str(d.config)],
                         capture_output=True, text=True, check=True).stdout
    assert f"asked the daemon (pid {d.proc.pid})" in out
    done = wait_for(lambda: [r for r in d.runs() if r.status != "running"], 20, "the requested run")
    assert [(r.trigger, r.status) for r in done] == [("next", "success")]
    assert d.state()["next_run_time"].endswith("07:00:00+00:00")  # the schedule is unchanged
    assert d.stop() == 0


# --- the real generate, tiny built-in model -------------------------------------------------------
def test_daemon_with_real_generate(daemons: Callable[..., DaemonProcess], tmp_path: Path) -> None:
    recorded = tmp_path / "set-wallpaper.txt"
    record = f"import sys; open({str(recorded)!r}, 'a').write(sys.argv[1] + '\\n')"
    settings: dict[str, Any] = {
        "models": {"base": "builtin:tiny", "upscaler": "builtin:tiny", "device": "cpu"},
        "pipeline": {"txt2img": {"width": 128, "height": 64, "steps": 2},
                     "enhance": {"tile": 256, "overlap": 64, "steps": 2}},
        "output": {"width": 480, "height": 270, "upscale_factor": 4},
        "weather": {"enabled": False},
        "desktop": {"setter": "command",
                    "command": [sys.executable, "-c", record, "{path}"]},
    }
    d = daemons({"interval_seconds": 1, "timezone": "UTC"}, job=False, extra_settings=settings, stop_grace=30)
    good_config = d.config.read_text()
    d.wait_started()
    wait_for(lambda: any(r.status == "success" for r in d.runs()), 120, "the first real run")
    # Break the config: the next run fails (config error in the child); the daemon goes on.
    broken = yaml.safe_load(good_config)
    broken["pipeline"]["txt2img"]["steps"] = 0
    d.config.write_text(yaml.safe_dump(broken))
    wait_for(lambda: any(r.status == "failed" for r in d.runs()), 60, "a failed run")
    d.config.write_text(good_config)
    wait_for(lambda: sum(r.status == "success" for r in d.runs()) >= 2, 120, "a second successful run")
    assert d.stop(timeout=45) == 0
    runs = d.runs()
    statuses = [r.status for r in runs]
    assert statuses.count("success") >= 2 and "failed" in statuses
    assert set(statuses) <= {"success", "failed", "cancelled"}  # nothing left "running"
    failed = next(r for r in runs if r.status == "failed")
    assert failed.error and "steps" in failed.error
    ok = [r for r in runs if r.status == "success"]
    assert all(r.wallpaper and Path(r.wallpaper).is_file() for r in ok)
    assert len({r.wallpaper for r in ok}) == len(ok)  # a new file name every time
    set_paths = recorded.read_text().split()
    assert [r.wallpaper for r in ok] == set_paths[:len(ok)]
    assert all(r.trigger == "schedule" for r in runs)


def test_a_failed_child_s_own_error_message_is_recorded_and_shown(daemons: Callable[..., DaemonProcess]) -> None:
    d = daemons({"cron": "0 7 * * *", "timezone": "UTC", "catch_up": False})
    d.queue("log-then-error")
    d.wait_started()
    subprocess.run([sys.executable, "-m", "ai_wallpaper", "next", "--config", str(d.config)], check=True,
                   capture_output=True)
    failed = wait_for(lambda: [r for r in d.runs() if r.status == "failed"], 20, "the failed run")[0]
    assert d.stop() == 0
    # The child printed JSON log lines around its `error:` block and exited 5 without recording:
    # the row holds its own words (message and hint), not log fragments or an exit code.
    assert failed.error == "something human\n  hint: do the human thing"
    cli = [sys.executable, "-m", "ai_wallpaper"]
    status = subprocess.run([*cli, "status", "--config", str(d.config)], capture_output=True, text=True,
                            check=True).stdout
    assert "\n  error: something human\n  hint: do the human thing\n" in status
    assert "{" not in status
    table = subprocess.run([*cli, "history", "--config", str(d.config)], capture_output=True, text=True,
                           check=True).stdout
    row = next(line for line in table.splitlines() if line.startswith(failed.run_id))
    assert row.split()[3:5] == ["next", "failed"] and row.endswith("something human")
    as_json = subprocess.run([*cli, "history", "--json", "--config", str(d.config)], capture_output=True,
                             text=True, check=True).stdout
    assert json.loads(as_json)["runs"][0]["error"] == failed.error
