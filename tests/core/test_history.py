"""History database: round trips, stale runs, crash safety with a real killed process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ai_wallpaper.core.history import FinalStatus, History
from ai_wallpaper.core.paths import Paths


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "state" / "history.sqlite3")


def test_schema_is_wal_and_directory_created(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "dir" / "h.sqlite3"
    History(db)
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_run_round_trip(history: History) -> None:
    plan = {"prompt": "a lake", "theme": {"key": "nature/lake", "name": "Lake", "category": "nature"}}
    history.start_run("r1", trigger="manual", plan=plan, run_dir="/tmp/r1")
    rec = history.get("r1")
    assert rec is not None and rec.status == "running" and rec.finished_at is None
    assert rec.plan == plan and rec.theme_key == "nature/lake" and rec.run_dir == "/tmp/r1"
    history.finish_run("r1", status="success", outputs={"final": "/tmp/r1/05.png"},
                       timings={"txt2img": 1.5}, wallpaper="/w/a.png")
    rec = history.get("r1")
    assert rec is not None
    assert rec.status == "success" and rec.outputs == {"final": "/tmp/r1/05.png"}
    assert rec.timings == {"txt2img": 1.5} and rec.wallpaper == "/w/a.png"
    assert rec.duration_s is not None and rec.duration_s >= 0
    assert history.last_run() == rec


def test_finish_unknown_run_raises(history: History) -> None:
    with pytest.raises(KeyError):
        history.finish_run("nope", status="failed", error="x")


def test_list_and_recent_themes_most_recent_first(history: History) -> None:
    for i, key in enumerate(["a", "b", None, "c"]):
        plan = {"theme": {"key": key}} if key else {}
        history.start_run(f"r{i}", trigger="schedule", plan=plan, run_dir=None)
        failed = i == 1
        history.finish_run(f"r{i}", status="failed" if failed else "success",
                           error="boom" if failed else None)
    assert [r.run_id for r in history.list_runs(10)] == ["r3", "r2", "r1", "r0"]
    assert [r.run_id for r in history.list_runs(2)] == ["r3", "r2"]
    assert history.recent_themes(2) == ["c", "b"]
    assert history.recent_themes(10) == ["c", "b", "a"]
    assert history.recent_themes(0) == []


def test_favorites_and_prunable(history: History) -> None:
    for i in range(4):
        history.start_run(f"r{i}", trigger="manual", plan={}, run_dir=f"/runs/r{i}")
        history.finish_run(f"r{i}", status="success", outputs={"final": f"/o/{i}.png"},
                           wallpaper=f"/w/{i}.png")
    history.set_favorite("r0", True)
    assert history.favorite_wallpapers() == {"/w/0.png", "/o/0.png"}
    assert [r.run_id for r in history.prunable_runs(2)] == ["r1"]
    history.set_favorite("r0", False)
    assert [r.run_id for r in history.prunable_runs(2)] == ["r1", "r0"]
    with pytest.raises(KeyError):
        history.set_favorite("missing", True)


def test_previous_and_forward_walk_the_whole_history_skipping_missing_files(history: History,
                                                                            tmp_path: Path) -> None:
    files = []
    for i in range(4):
        f = tmp_path / f"w{i}.png"
        f.write_bytes(b"x")
        files.append(f)
        history.start_run(f"r{i}", trigger="manual", plan={}, run_dir=None)
        history.finish_run(f"r{i}", status="success", wallpaper=str(f))
    assert history.current_wallpaper() == files[3]
    assert history.step_wallpaper(+1) is None  # already the newest
    for back in (2, 1, 0):  # all the way back, not a toggle between the last two
        assert history.previous_wallpaper() == files[back]
        history.record_wallpaper(str(files[back]), run_id=None, action="previous")
    assert history.previous_wallpaper() is None
    files[1].unlink()
    assert history.step_wallpaper(+1) == files[2]  # the gone file is skipped
    history.record_wallpaper(str(files[2]), run_id=None, action="forward")
    assert history.step_wallpaper(+1) == files[3] and history.previous_wallpaper() == files[0]


def test_failed_run_does_not_change_wallpaper_sequence(history: History) -> None:
    history.start_run("ok", trigger="manual", plan={}, run_dir=None)
    history.finish_run("ok", status="success", wallpaper="/w/ok.png")
    history.start_run("bad", trigger="manual", plan={}, run_dir=None)
    history.finish_run("bad", status="failed", error="oom", wallpaper="/w/bad.png")
    assert history.wallpaper_sequence() == ["/w/ok.png"]


def test_fail_stale_running_only_touches_dead_pids(history: History) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    history.start_run("alive", trigger="manual", plan={}, run_dir=None)  # our own pid: alive
    history.start_run("dead", trigger="manual", plan={}, run_dir=None, pid=dead.pid)
    assert history.fail_stale_running("daemon restarted") == 1
    dead_rec, alive_rec = history.get("dead"), history.get("alive")
    assert dead_rec is not None and dead_rec.status == "failed" and dead_rec.error == "daemon restarted"
    assert alive_rec is not None and alive_rec.status == "running"
    assert history.finish_if_running("alive", status="cancelled", error="stop") is True
    assert history.finish_if_running("alive", status="failed", error="again") is False
    rec = history.get("alive")
    assert rec is not None and rec.status == "cancelled"


def test_killed_writer_leaves_consistent_database(history: History) -> None:
    """SIGKILL a process in the middle of writing many rows: the DB stays intact and readable."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from ai_wallpaper.core.history import FinalStatus, History
        h = History(Path({str(history.db_path)!r}))
        for i in range(10_000):
            h.start_run(f"k{{i}}", trigger="schedule", plan={{"n": i, "pad": "x" * 2000}}, run_dir=None)
            if i == 30:
                print("go", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
    proc.kill()
    proc.wait()
    with sqlite3.connect(history.db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = history.list_runs(100_000)
    assert len(runs) >= 31 and all(r.status == "running" for r in runs)
    # The killed process is gone: every one of its rows is now failed.
    assert history.fail_stale_running("killed") == len(runs)
    assert {r.status for r in history.list_runs(100_000)} == {"failed"}


# --- the CLI: history, favorite, previous ---------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ai_wallpaper", *args], capture_output=True, text=True)


def test_history_favorite_previous_commands(paths: Paths, tmp_path: Path) -> None:
    history = History(paths.history_db)
    walls = []
    plan: list[tuple[FinalStatus, str | None]] = [("success", "lake"), ("failed", None), ("success", "city")]
    for i, (status, key) in enumerate(plan):
        wall = tmp_path / f"w{i}.png"
        wall.write_bytes(b"png")
        walls.append(wall)
        history.start_run(f"run-{i}", trigger="schedule", plan={"theme": {"key": key}} if key else {},
                          run_dir=None)
        history.finish_run(f"run-{i}", status=status, error="CUDA out of memory\nmore" if status == "failed"
                           else None, wallpaper=str(wall) if status == "success" else None)
    table = _cli("history").stdout.splitlines()
    assert [line.split()[0] for line in table[1:]] == ["run-2", "run-1", "run-0"]
    assert "CUDA out of memory" in table[2] and "more" not in table[2] and "city" in table[1]
    assert [r["run_id"] for r in json.loads(_cli("history", "--json", "-n", "1").stdout)["runs"]] == ["run-2"]

    assert _cli("favorite").returncode == 0  # default: the last successful run
    assert history.get("run-2").favorite  # type: ignore[union-attr]
    assert _cli("favorite", "run-0").returncode == 0 and _cli("favorite", "run-2", "--remove").returncode == 0
    assert [r.run_id for r in history.list_runs(10) if r.favorite] == ["run-0"]
    bad = _cli("favorite", "nope")
    assert bad.returncode == 1 and "no run 'nope'" in bad.stderr

    record = tmp_path / "set.txt"
    cfg = tmp_path / "settings.yaml"
    setter = f"import sys; open({str(record)!r}, 'a').write(sys.argv[1] + chr(10))"
    cfg.write_text(yaml.safe_dump({"desktop": {"setter": "command",
                                               "command": [sys.executable, "-c", setter, "{path}"]}}))
    assert _cli("previous", "--config", str(cfg)).returncode == 0
    oldest = _cli("previous", "--config", str(cfg))  # run-1 failed: run-0 is the oldest wallpaper
    assert oldest.returncode == 1 and "no previous wallpaper" in oldest.stderr
    assert _cli("forward", "--config", str(cfg)).returncode == 0
    newest = _cli("forward", "--config", str(cfg))
    assert newest.returncode == 1 and "already at the newest wallpaper" in newest.stderr
    assert record.read_text().split() == [str(walls[0]), str(walls[2])]
    assert history.current_wallpaper() == walls[2]


def test_previous_without_history_is_an_error(paths: Paths) -> None:
    proc = _cli("previous")
    assert proc.returncode == 1 and "no previous wallpaper" in proc.stderr
