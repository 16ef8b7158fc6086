"""`ai-wallpaper status`: the daemon (from its lock and state file), the run in progress with its stage and
percent (from the file the run publishes, core/progress.py) and the last run."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from ai_wallpaper.commands import json_output
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.core.errors import ExitCode
from ai_wallpaper.core.history import History
from ai_wallpaper.core.progress import describe, read_run_progress
from ai_wallpaper.core.untrusted_input import read_small_json
from ai_wallpaper.service.lock import lock_holder
from ai_wallpaper.service.pause import describe_pause


def read_state(ctx: AppContext) -> dict[str, Any]:
    try:
        data = read_small_json(ctx.paths.daemon_state, 64 * 1024)  # never blocks on a FIFO, never huge
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def local_time(dt: datetime | str | None) -> str:
    if dt is None:
        return "-"
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def headline(error: str) -> str:
    """An error on one line: its first line, with the bullet list a "...:" line introduces (config
    problems) joined on; no hint."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    if not lines:
        return "-"
    head, rest = lines[0], [line for line in lines[1:] if not line.startswith("hint:")]
    items = [line.removeprefix("- ") for line in rest if line.startswith("- ")]
    if head.endswith(":") and items:
        return f"{head} {'; '.join(items)}"
    return head


def hint_of(error: str) -> str | None:
    hints = [line.strip().removeprefix("hint:").strip() for line in error.splitlines()
             if line.strip().startswith("hint:")]
    return hints[-1] if hints else None


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h {rest // 60:02d}m {rest % 60:02d}s" if hours else f"{rest // 60}m {rest % 60:02d}s"


def current_run(ctx: AppContext, history: History, state: dict[str, Any], daemon_up: bool) -> dict[str, Any] | None:
    """The run in progress: the daemon's, else one `next` or `generate` is running; with its progress."""
    run_id = state.get("current_run_id") if daemon_up else None
    row = history.get(run_id) if run_id else None
    if run_id is None:
        active = history.active_runs()
        row = active[-1] if active else None
        run_id = row.run_id if row else None
    if run_id is None:
        return None
    progress = read_run_progress(ctx.paths.run_progress(run_id)) or {}
    started = row.started_at if row else None
    elapsed = (datetime.now(started.tzinfo) - started).total_seconds() if started else None
    return {"run_id": run_id, "stage": progress.get("stage"), "stage_index": progress.get("stage_index"),
            "stage_count": progress.get("stage_count"), "step": progress.get("step"),
            "total": progress.get("total"), "percent": progress.get("percent"),
            "started_at": started.isoformat() if started else None,
            "elapsed_s": round(elapsed, 1) if elapsed is not None else None}


def cmd_status(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.service.daemon import describe_schedule, next_fire_time

    schedule = ctx.settings.schedule
    pid = lock_holder(ctx.paths.daemon_lock)
    state = read_state(ctx) if pid else {}
    history = History(ctx.paths.history_db)
    current = current_run(ctx, history, state, bool(pid))
    last = history.last_run()
    paused = describe_pause(ctx.paths)
    if getattr(args, "json", False):
        json_output.emit({
            "daemon": {"running": bool(pid), "pid": pid, "started_at": state.get("started_at"),
                       "schedule": state.get("schedule", describe_schedule(schedule)),
                       "next_run_time": state.get("next_run_time") if pid else None},
            "current_run": current,
            "pause": paused,
            "last_run": json_output.run_json(last) if last else None})
        return int(ExitCode.OK)
    if pid:
        print(f"daemon: running (pid {pid}) since {local_time(state.get('started_at'))}")
        print(f"schedule: {state.get('schedule', describe_schedule(schedule))}")
    else:
        print("daemon: not running")
        print(f"schedule: {describe_schedule(schedule)}")
    if paused:
        print(f"pause: {paused}")
    if current is not None:
        doing = f"stage {describe(current)}" if current["stage"] else "starting (no stage yet)"
        elapsed = f", elapsed {_duration(current['elapsed_s'])}" if current["elapsed_s"] is not None else ""
        print(f"now running: {current['run_id']}: {doing}{elapsed}")
    if pid:
        print(f"next run: {local_time(state.get('next_run_time'))}")
    else:
        print(f"next run if started now: {local_time(next_fire_time(schedule))}")
    if last is None:
        print("last run: none yet")
        return int(ExitCode.OK)
    took = f" in {last.duration_s:.0f} s" if last.duration_s is not None else ""
    print(f"last run: {last.run_id} ({last.trigger}) at {local_time(last.started_at)}: {last.status}{took}")
    if last.error:
        print(f"  {'reason' if last.status == 'skipped' else 'error'}: {headline(last.error)}")
        if hint := hint_of(last.error):
            print(f"  hint: {hint}")
    if last.wallpaper:
        print(f"  wallpaper: {last.wallpaper}")
    return int(ExitCode.OK)
