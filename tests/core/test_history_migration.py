"""The history database's schema migration (version 1 -> 2: the 'skipped' status) on a real file made
with the old schema, and how skipped rows count: the tick handled, never a run folder to keep."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from ai_wallpaper.core.history import History
from ai_wallpaper.core.history_db import SCHEMA_VERSION

# Version 1, exactly as it shipped.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    trigger     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'success', 'failed', 'cancelled')),
    started_at  REAL NOT NULL,
    finished_at REAL,
    pid         INTEGER,
    plan        TEXT NOT NULL DEFAULT '{}',
    theme_key   TEXT,
    run_dir     TEXT,
    outputs     TEXT NOT NULL DEFAULT '{}',
    error       TEXT,
    timings     TEXT NOT NULL DEFAULT '{}',
    wallpaper   TEXT,
    favorite    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE TABLE IF NOT EXISTS wallpapers (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    set_at  REAL NOT NULL,
    path    TEXT NOT NULL,
    run_id  TEXT,
    action  TEXT NOT NULL
);
PRAGMA user_version = 1;
"""
ROWS = [
    ("r1", "schedule", "success", 100.0, 160.0, 11, '{"theme": {"key": "lake"}}', "lake", "/runs/r1",
     '{"final": "/runs/r1/final.png"}', None, '{"txt2img": 12.5}', "/w/r1.png", 1),
    ("r2", "manual", "failed", 200.0, 201.0, 12, "{}", None, None, "{}", "CUDA out of memory\n  hint: x",
     "{}", None, 0),
    ("r3", "catch-up", "cancelled", 300.0, 310.0, 13, "{}", "city", "/runs/r3", "{}", "daemon stopped", "{}",
     None, 0),
    ("r4", "next", "running", 400.0, None, 14, '{"prompt": "é ✓"}', None, "/runs/r4", "{}", None, "{}", None, 0),
]


def _old_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", ROWS)
        db.executemany("INSERT INTO wallpapers (set_at, path, run_id, action) VALUES (?, ?, ?, ?)",
                       [(160.0, "/w/r1.png", "r1", "run"), (500.0, "/w/r1.png", None, "previous")])
    db.close()


def _dump(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(path) as db:
        runs = db.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
        walls = db.execute("SELECT * FROM wallpapers ORDER BY id").fetchall()
    db.close()
    return runs, walls


def test_a_version_1_database_is_migrated_with_every_row_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    _old_db(path)
    before = _dump(path)
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):  # the old CHECK refuses it
        db.execute("INSERT INTO runs (run_id, trigger, status, started_at) VALUES ('x', 'schedule', 'skipped', 1)")
    history = History(path)
    assert _dump(path) == before  # every column of every row, and the wallpapers table, unchanged
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "runs_started" in indexes
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "runs_v2" not in tables
    db.close()
    r1 = history.get("r1")
    assert r1 is not None and r1.favorite and r1.timings == {"txt2img": 12.5} and r1.theme_key == "lake"
    assert history.get("r4").plan == {"prompt": "é ✓"}  # type: ignore[union-attr]
    assert history.record_skipped("r5", trigger="schedule", reason="on battery (38%)")
    r5 = history.get("r5")
    assert r5 is not None and (r5.status, r5.error, r5.trigger) == ("skipped", "on battery (38%)", "schedule")
    assert r5.finished_at is not None and r5.run_dir is None
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.IntegrityError):  # the new CHECK still checks
        db.execute("INSERT INTO runs (run_id, trigger, status, started_at) VALUES ('y', 'schedule', 'bogus', 1)")
    db.close()
    History(path)  # opening again: nothing to do, nothing lost
    assert len(history.list_runs(100)) == 5


def test_a_failed_migration_leaves_the_old_table_whole(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    _old_db(path)
    with sqlite3.connect(path) as db:  # a row the new CHECK refuses (a status no version wrote) stops the copy
        db.execute("PRAGMA ignore_check_constraints = 1")
        db.execute("UPDATE runs SET status = 'weird' WHERE run_id = 'r2'")
    db.close()
    before = _dump(path)
    with pytest.raises(sqlite3.IntegrityError):
        History(path)
    assert _dump(path) == before
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()


def test_two_processes_opening_an_old_database_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    _old_db(path)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            History(path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(_dump(path)[0]) == len(ROWS)


def test_a_fresh_database_has_the_current_schema(tmp_path: Path) -> None:
    history = History(tmp_path / "new.sqlite3")
    assert history.record_skipped("s1", trigger="catch-up", reason="paused until `ai-wallpaper resume`")
    assert not history.record_skipped("s1", trigger="catch-up", reason="again")  # the first row stays
    assert history.get("s1").error == "paused until `ai-wallpaper resume`"  # type: ignore[union-attr]


def test_skipped_rows_count_as_handled_but_never_as_runs_to_keep(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    for i in range(3):
        history.start_run(f"run-{i}", trigger="schedule", plan={}, run_dir=f"/runs/run-{i}")
        history.finish_run(f"run-{i}", status="success")
    for i in range(5):
        history.record_skipped(f"skip-{i}", trigger="schedule", reason="the screen is locked")
    last = history.last_run()
    assert last is not None and last.run_id == "skip-4"  # catch-up sees the tick as handled
    real = history.last_run(skipped=False)
    assert real is not None and real.run_id == "run-2"
    # keep 2: only run-0 is prunable; the five skipped rows neither count nor are listed
    assert [r.run_id for r in history.prunable_runs(2)] == ["run-0"]
    assert history.wallpaper_sequence() == []
