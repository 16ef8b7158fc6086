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

RunStatus = Literal["running", "success", "failed", "cancelled"]
FinalStatus = Literal["success", "failed", "cancelled"]
FINAL_STATUSES: tuple[str, ...] = get_args(FinalStatus)
# What started a run: `generate` by hand, the schedule, a missed tick caught up, `ai-wallpaper next`.
Trigger = Literal["manual", "schedule", "catch-up", "next"]
TRIGGERS: tuple[str, ...] = get_args(Trigger)

SCHEMA_VERSION = 1
_SCHEMA = """
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
"""


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
    db.executescript(_SCHEMA)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


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
