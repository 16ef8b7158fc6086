"""The history database's tables, its row type, and how every connection to it is opened.

Split from history.py so the storage rules (schema, WAL, `synchronous=FULL`, busy timeout, one
`BEGIN IMMEDIATE` transaction per write) are read in one place, apart from the queries.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

# "skipped": a scheduled run that did not paint because of a pause or a schedule.skip_when condition; its
# reason is in the error column. It is final and counts as the trigger handled (catch-up does not redo it).
RunStatus = Literal["running", "success", "failed", "cancelled", "skipped"]
FinalStatus = Literal["success", "failed", "cancelled", "skipped"]
FINAL_STATUSES: tuple[str, ...] = get_args(FinalStatus)
# What started a run: `generate` by hand, the schedule, a missed tick caught up, `ai-wallpaper next`.
Trigger = Literal["manual", "schedule", "catch-up", "next"]
TRIGGERS: tuple[str, ...] = get_args(Trigger)

# Version 1 had no 'skipped' status; `create_schema` migrates it (SQLite cannot alter a CHECK).
SCHEMA_VERSION = 2
_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    trigger     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'success', 'failed', 'cancelled', 'skipped')),
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
)"""
_COLUMNS = ("run_id, trigger, status, started_at, finished_at, pid, plan, theme_key, run_dir, outputs, error, "
            "timings, wallpaper, favorite")
_INDEX = "CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at)"
_WALLPAPERS = """
CREATE TABLE IF NOT EXISTS wallpapers (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    set_at  REAL NOT NULL,
    path    TEXT NOT NULL,
    run_id  TEXT,
    action  TEXT NOT NULL
)"""


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    trigger: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    pid: int | None
    plan: dict[str, Any]
    theme_key: str | None
    run_dir: str | None
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    wallpaper: str | None = None
    favorite: bool = False

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        started = _ts(row["started_at"])
        assert started is not None
        return cls(
            run_id=row["run_id"],
            trigger=row["trigger"],
            status=row["status"],
            started_at=started,
            finished_at=_ts(row["finished_at"]),
            pid=row["pid"],
            plan=json.loads(row["plan"]),
            theme_key=row["theme_key"],
            run_dir=row["run_dir"],
            outputs=json.loads(row["outputs"]),
            error=row["error"],
            timings=json.loads(row["timings"]),
            wallpaper=row["wallpaper"],
            favorite=bool(row["favorite"]),
        )


def create_schema(db: sqlite3.Connection) -> None:
    """Create the tables, or bring an older database up to SCHEMA_VERSION, in one transaction.

    Cheap when the database is current (one read, no write). A database from a newer version is left
    as it is: its schema is a superset this version can still read and write."""
    if _version(db) >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")  # the daemon and its child may both open an old database at once
    try:
        if _version(db) < SCHEMA_VERSION:  # re-read under the write lock: the other one may have done it
            if _table_sql(db, "runs") is not None:
                _migrate_runs(db)
            db.execute(_RUNS)
            db.execute(_INDEX)
            db.execute(_WALLPAPERS)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _version(db: sqlite3.Connection) -> int:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return version


def _table_sql(db: sqlite3.Connection, name: str) -> str | None:
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def _migrate_runs(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: a new `runs` table whose CHECK allows 'skipped', every row copied, then swapped
    in. Runs inside the caller's transaction, so a crash leaves the old table whole."""
    sql = _table_sql(db, "runs") or ""
    if "'skipped'" in sql:  # already migrated (the version was not bumped): nothing to copy
        return
    db.execute(_RUNS.replace("EXISTS runs (", "EXISTS runs_v2 (", 1))
    db.execute(f"INSERT INTO runs_v2 ({_COLUMNS}) SELECT {_COLUMNS} FROM runs")
    db.execute("DROP TABLE runs")  # its index goes with it; create_schema makes it again
    db.execute("ALTER TABLE runs_v2 RENAME TO runs")


@contextmanager
def connect(db_path: Path, busy_timeout_s: float) -> Iterator[sqlite3.Connection]:
    """A fresh connection per call: safe across fork and between the daemon and its child."""
    db = sqlite3.connect(db_path, timeout=busy_timeout_s, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed row survives power loss, not just a process crash. Runs are rare.
        db.execute("PRAGMA synchronous = FULL")
        yield db
    finally:
        db.close()


@contextmanager
def transaction(db_path: Path, busy_timeout_s: float) -> Iterator[sqlite3.Connection]:
    # IMMEDIATE takes the write lock up front, so two writers queue instead of one failing mid-way.
    with connect(db_path, busy_timeout_s) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
