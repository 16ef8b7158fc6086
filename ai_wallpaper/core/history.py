"""Run history in SQLite: every run's plan, outputs, status, error and timings.

Crash safety: WAL journal + `synchronous=FULL`, one short transaction per call, a fresh connection per
call (safe across fork and between the daemon and its child). A run that is killed mid-way leaves its
row "running"; `fail_stale_running` (called by the daemon at start and before each run) turns such
rows into "failed": rows whose process is gone, and every row from before the last boot (its pid may
name another process by now). The database itself is never left half-written: SQLite's
journal guarantees that.

A second table, `wallpapers`, records every time a wallpaper was put on the desktop (by a run, or by
`ai-wallpaper previous`), so "the previous wallpaper" is well defined and never pruned.

A scheduled run that a pause or a `schedule.skip_when` condition stops before it starts is one final
"skipped" row with its reason in the error column; it counts as the tick handled, never as a failure.

The tables, the row type and how a connection is opened are in history_db.py; this module is what
the program asks of them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ai_wallpaper.core.history_db import (
    FINAL_STATUSES,
    FinalStatus,
    RunRecord,
    RunStatus,
    connect,
    create_schema,
    transaction,
)
from ai_wallpaper.core.run_liveness import row_process_alive, row_process_at_work


class History:
    """The run history database. Cheap to construct; every method opens its own short connection."""

    def __init__(self, db_path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.db_path = Path(db_path)
        self.busy_timeout_s = busy_timeout_s
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            create_schema(db)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.db_path, self.busy_timeout_s)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db_path, self.busy_timeout_s)

    # --- writing -------------------------------------------------------------------------------
    def start_run(self, run_id: str, *, trigger: str, plan: dict[str, Any], run_dir: str | None,
                  pid: int | None = None) -> None:
        """Insert the run as "running" (or mark a resumed one running again). `pid` defaults to this
        process (the one doing the work)."""
        theme = plan.get("theme") if isinstance(plan, dict) else None
        theme_key = theme.get("key") if isinstance(theme, dict) else None
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (run_id, trigger, status, started_at, pid, plan, theme_key, run_dir) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?) "
                # A resumed run (generate --resume) reuses its id: it is running again.
                "ON CONFLICT (run_id) DO UPDATE SET status = 'running', trigger = excluded.trigger, "
                "pid = excluded.pid, finished_at = NULL, error = NULL",
                (run_id, trigger, time.time(), pid if pid is not None else os.getpid(),
                 json.dumps(plan, default=str), theme_key, run_dir),
            )

    def finish_run(self, run_id: str, *, status: FinalStatus, outputs: dict[str, str] | None = None,
                   error: str | None = None, timings: dict[str, float] | None = None,
                   wallpaper: str | None = None) -> None:
        """Mark the run finished. Unknown run ids raise KeyError (a bug, not a user problem)."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"finish_run: bad status {status!r}")
        now = time.time()
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, outputs = ?, error = ?, timings = ?, "
                "wallpaper = COALESCE(?, wallpaper) WHERE run_id = ?",
                (status, now, json.dumps(outputs or {}), error, json.dumps(timings or {}), wallpaper, run_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no run {run_id!r} in {self.db_path}")
            if wallpaper is not None and status == "success":
                db.execute("INSERT INTO wallpapers (set_at, path, run_id, action) VALUES (?, ?, ?, 'run')",
                           (now, wallpaper, run_id))

    def finish_if_running(self, run_id: str, *, status: FinalStatus, error: str,
                          replacing: tuple[RunStatus, ...] = ("running",)) -> bool:
        """Finish a run only if it is still "running" (the daemon's safety net after its child exits).
        `replacing` widens that: a run that timed out is "failed" even though its child said "cancelled"."""
        marks = ", ".join("?" * len(replacing))
        with self._transaction() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, finished_at = COALESCE(finished_at, ?), error = ? "
                f"WHERE run_id = ? AND status IN ({marks})",
                (status, time.time(), error, run_id, *replacing),
            )
            return cur.rowcount > 0

    def record_unstarted(self, run_id: str, *, trigger: str, status: FinalStatus, error: str | None,
                         pid: int | None = None) -> bool:
        """Write the final row of a run that ended before it recorded itself (bad config, missing model,
        killed while loading), so the history says why it never ran. False if the row already exists."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"record_unstarted: bad status {status!r}")
        now = time.time()
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO runs (run_id, trigger, status, started_at, finished_at, pid, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                (run_id, trigger, status, now, now, pid if pid is not None else os.getpid(), error),
            )
            return cur.rowcount > 0

    def record_skipped(self, run_id: str, *, trigger: str, reason: str) -> bool:
        """Write the final row of a scheduled run that did not paint (paused, on battery...): status
        "skipped", `reason` in the error column. False if the row already exists."""
        return self.record_unstarted(run_id, trigger=trigger, status="skipped", error=reason)

    def record_wallpaper(self, path: str, *, run_id: str | None, action: str) -> None:
        """Note that `path` is now on the desktop (e.g. action="previous")."""
        with self._transaction() as db:
            db.execute("INSERT INTO wallpapers (set_at, path, run_id, action) VALUES (?, ?, ?, ?)",
                       (time.time(), path, run_id, action))

    def set_favorite(self, run_id: str, favorite: bool) -> None:
        with self._transaction() as db:
            cur = db.execute("UPDATE runs SET favorite = ? WHERE run_id = ?", (int(favorite), run_id))
            if cur.rowcount == 0:
                raise KeyError(run_id)

    def fail_stale_running(self, reason: str, *, exclude_pids: frozenset[int] = frozenset()) -> int:
        """Rows still "running" whose process is gone become "failed" with `reason`. Returns the count."""
        with self._transaction() as db:
            rows = db.execute("SELECT run_id, pid, started_at FROM runs WHERE status = 'running'").fetchall()
            stale = [r["run_id"] for r in rows
                     if r["pid"] not in exclude_pids and not row_process_alive(r["pid"], r["started_at"])]
            now = time.time()
            for run_id in stale:
                db.execute("UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE run_id = ?",
                           (now, reason, run_id))
            return len(stale)

    def active_runs(self) -> list[RunRecord]:
        """Rows still "running" whose own process is at work: alive, and started no later than the row
        (a pid reused by a newer process does not count; neither does a resumed run, whose row is older
        than its process — good enough for "is another generation using the machine right now")."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE status = 'running' ORDER BY started_at").fetchall()
        return [RunRecord.from_row(r) for r in rows if row_process_at_work(r["pid"], r["started_at"])]

    def delete_runs(self, run_ids: list[str]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in run_ids])

    # --- reading -------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord | None:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return RunRecord.from_row(row) if row else None

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """Most recent first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?",
                              (limit,)).fetchall()
        return [RunRecord.from_row(r) for r in rows]

    def last_run(self, *, skipped: bool = True) -> RunRecord | None:
        """The newest row. A skipped run counts by default: the trigger was handled (the daemon's
        catch-up does not fire again for a tick that was skipped); `skipped=False` passes over them."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE ? OR status != 'skipped' "
                             "ORDER BY started_at DESC, rowid DESC LIMIT 1", (skipped,)).fetchone()
        return RunRecord.from_row(row) if row else None

    def recent_themes(self, n: int) -> list[str]:
        """Theme keys of the last `n` runs that had a theme, most recent first (any status)."""
        if n <= 0:
            return []
        with self._connect() as db:
            rows = db.execute("SELECT theme_key FROM runs WHERE theme_key IS NOT NULL "
                              "ORDER BY started_at DESC, rowid DESC LIMIT ?", (n,)).fetchall()
        return [r["theme_key"] for r in rows]

    def favorite_wallpapers(self) -> set[str]:
        """Wallpaper and output paths of favorite runs (never pruned)."""
        with self._connect() as db:
            rows = db.execute("SELECT wallpaper, outputs FROM runs WHERE favorite = 1").fetchall()
        keep: set[str] = set()
        for r in rows:
            if r["wallpaper"]:
                keep.add(r["wallpaper"])
            keep.update(json.loads(r["outputs"]).values())
        return keep

    def wallpaper_sequence(self, limit: int = 50) -> list[str]:
        """Paths put on the desktop, most recent first, consecutive duplicates collapsed."""
        with self._connect() as db:
            rows = db.execute("SELECT path FROM wallpapers ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        seq: list[str] = []
        for r in rows:
            if not seq or seq[-1] != r["path"]:
                seq.append(r["path"])
        return seq

    def current_wallpaper(self) -> Path | None:
        seq = self.wallpaper_sequence(1)
        return Path(seq[0]) if seq else None

    def timeline(self) -> list[str]:
        """Every wallpaper a run put on the desktop, oldest first, each once (a file may be gone since)."""
        with self._connect() as db:
            rows = db.execute("SELECT path FROM wallpapers WHERE action = 'run' ORDER BY id").fetchall()
        return list(dict.fromkeys(r["path"] for r in rows))

    def step_wallpaper(self, direction: int) -> Path | None:
        """The wallpaper `direction` steps along the timeline from the one on the desktop (-1: older,
        +1: newer), skipping files that are gone; None at either end. A desktop showing something off
        the timeline counts as the newest."""
        timeline = self.timeline()
        current = self.current_wallpaper()
        here = timeline.index(str(current)) if current is not None and str(current) in timeline else len(timeline)
        i = here + direction
        while 0 <= i < len(timeline):
            if Path(timeline[i]).exists():
                return Path(timeline[i])
            i += direction
        return None

    def previous_wallpaper(self) -> Path | None:
        return self.step_wallpaper(-1)

    def prunable_runs(self, keep: int) -> list[RunRecord]:
        """Finished, non-favorite runs beyond the newest `keep` (for pruning run directories). Skipped
        rows have no folder and do not count: a week of paused ticks must not push real runs out."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs WHERE status != 'skipped' "
                              "ORDER BY started_at DESC, rowid DESC").fetchall()
        runs = [RunRecord.from_row(r) for r in rows]
        return [r for r in runs[keep:] if not r.favorite and r.status != "running"]
