"""Daemon and history commands: daemon, status, history (`show` is in history_cmd), previous, favorite, next,
install-service."""

from __future__ import annotations

import argparse
import json
import os
import signal
from datetime import datetime
from typing import Any

from ai_wallpaper.commands import history_cmd
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.commands.service_cmd import cmd_install_service
from ai_wallpaper.core.errors import ExitCode, WallpaperError
from ai_wallpaper.core.history import History, RunRecord
from ai_wallpaper.service.lock import lock_holder


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("daemon", parents=[common], help="run the scheduler in the foreground",
                       description="Generate a wallpaper on the configured schedule (systemd runs this).")
    p.set_defaults(func=cmd_daemon)
    p = sub.add_parser("status", parents=[common], help="is the daemon running, last and next run")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("history", parents=[common], help="list recent runs, or `history show RUN_ID`",
                       description="List recent runs; `history show [RUN_ID]` prints one run's stages with "
                                   "their time, peak memory and quality figures.")
    history_cmd.add_arguments(p)
    p.add_argument("-n", "--limit", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("previous", parents=[common], help="step back to the wallpaper before this one",
                       description="Walk back through every wallpaper a run made (files that are gone are "
                                   "skipped); `forward` walks the other way.")
    p.set_defaults(func=cmd_previous)
    p = sub.add_parser("forward", parents=[common], help="step forward again after `previous`",
                       description="Walk towards the newest wallpaper after `previous`.")
    p.set_defaults(func=cmd_forward)
    p = sub.add_parser("favorite", parents=[common], help="keep a run's images from pruning")
    p.add_argument("run_id", nargs="?", help="run id (default: the last successful run)")
    p.add_argument("--remove", action="store_true", help="un-favorite instead")
    p.set_defaults(func=cmd_favorite)
    p = sub.add_parser("next", parents=[common], help="generate now (through the daemon if it runs)")
    p.set_defaults(func=cmd_next)
    p = sub.add_parser("install-service", parents=[common], help="write the systemd user units")
    p.add_argument("--timer", action="store_true",
                   help="install the timer variant (one generation per timer tick) instead of the daemon")
    p.add_argument("--print", dest="print_only", action="store_true", help="print the units, write nothing")
    p.set_defaults(func=cmd_install_service)


# --- daemon / next -------------------------------------------------------------------------------
def cmd_daemon(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.service.daemon import Daemon

    return Daemon(ctx.settings, ctx.paths, config_file=ctx.config_file).run()


def cmd_next(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.service.job_runner import JobRunner, generate_command

    pid = lock_holder(ctx.paths.daemon_lock)
    if pid and pid > 0:
        state = _read_state(ctx)
        if state.get("current_run_id"):
            print(f"the daemon (pid {pid}) is already running {state['current_run_id']}")
            return int(ExitCode.OK)
        os.kill(pid, signal.SIGUSR1)
        print(f"asked the daemon (pid {pid}) to generate now; follow it with `ai-wallpaper status`")
        return int(ExitCode.OK)
    command = generate_command(ctx.config_file)
    runner = JobRunner(History(ctx.paths.history_db), command,
                       timeout_s=ctx.settings.schedule.run_timeout_minutes * 60.0)

    # Ctrl-C / SIGTERM stop the child (it is in its own session, so it never sees the terminal's
    # Ctrl-C) and the runner settles the row "cancelled"; a second one kills the child at once.
    def on_signal(signum: int, _frame: object) -> None:
        reason = "Ctrl-C" if signum == signal.SIGINT else f"signal {signal.Signals(signum).name}"
        runner.on_signal(f"interrupted by {reason}")

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcome = runner.run("next")
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if outcome is None:  # interrupted before the child started: nothing ran, nothing to record
        return int(ExitCode.INTERRUPTED)
    print(f"run {outcome.run_id}: {outcome.status}" + (f"\n{outcome.error}" if outcome.error else ""))
    if outcome.status == "cancelled":
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK) if outcome.status == "success" else int(ExitCode.RUN)


# --- status / history ----------------------------------------------------------------------------
def _read_state(ctx: AppContext) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(ctx.paths.daemon_state.read_text())
        return data
    except (OSError, ValueError):
        return {}


def _local(dt: datetime | str | None) -> str:
    if dt is None:
        return "-"
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _theme(rec: RunRecord) -> str:
    if rec.theme_key:
        return rec.theme_key
    prompt = rec.plan.get("prompt") if isinstance(rec.plan, dict) else None
    return (prompt[:30] + "…") if isinstance(prompt, str) and len(prompt) > 30 else (prompt or "-")


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


def _hint(error: str) -> str | None:
    hints = [line.strip().removeprefix("hint:").strip() for line in error.splitlines()
             if line.strip().startswith("hint:")]
    return hints[-1] if hints else None


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_status(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.service.daemon import describe_schedule, next_fire_time

    schedule = ctx.settings.schedule
    pid = lock_holder(ctx.paths.daemon_lock)
    state = _read_state(ctx)
    if pid:
        print(f"daemon: running (pid {pid}) since {_local(state.get('started_at'))}")
        print(f"schedule: {state.get('schedule', describe_schedule(schedule))}")
        if state.get("current_run_id"):
            print(f"now running: {state['current_run_id']}")
        print(f"next run: {_local(state.get('next_run_time'))}")
    else:
        print("daemon: not running")
        print(f"schedule: {describe_schedule(schedule)}")
        print(f"next run if started now: {_local(next_fire_time(schedule))}")
    last = History(ctx.paths.history_db).last_run()
    if last is None:
        print("last run: none yet")
    else:
        took = f" in {last.duration_s:.0f} s" if last.duration_s is not None else ""
        print(f"last run: {last.run_id} ({last.trigger}) at {_local(last.started_at)}: {last.status}{took}")
        if last.error:
            print(f"  error: {headline(last.error)}")
            if hint := _hint(last.error):
                print(f"  hint: {hint}")
        if last.wallpaper:
            print(f"  wallpaper: {last.wallpaper}")
    return int(ExitCode.OK)


def cmd_history(args: argparse.Namespace, ctx: AppContext) -> int:
    if args.history_action == "show":
        return history_cmd.cmd_history_show(args, ctx)
    if args.history_action == "gallery":
        return history_cmd.cmd_history_gallery(args, ctx)
    runs = History(ctx.paths.history_db).list_runs(args.limit)
    if args.json:
        for r in runs:
            print(json.dumps({"run_id": r.run_id, "trigger": r.trigger, "status": r.status,
                              "started_at": r.started_at.isoformat(), "duration_s": r.duration_s,
                              "theme": r.theme_key, "favorite": r.favorite, "wallpaper": r.wallpaper,
                              "error": r.error, "timings": r.timings, "outputs": r.outputs}))
        return int(ExitCode.OK)
    if not runs:
        print("no runs yet")
        return int(ExitCode.OK)
    print(f"{'run id':<24} {'started':<20} {'trigger':<9} {'status':<9} {'secs':>6}  {'':1} theme / error")
    for r in runs:
        secs = f"{r.duration_s:.0f}" if r.duration_s is not None else "-"
        note = _clip(headline(r.error), 80) if r.error else _theme(r)
        print(f"{r.run_id:<24} {r.started_at.astimezone():%Y-%m-%d %H:%M:%S} {r.trigger:<9} {r.status:<9} "
              f"{secs:>6}  {'*' if r.favorite else ' '} {note}")
    return int(ExitCode.OK)


# --- previous / favorite ---------------------------------------------------------------------------
def cmd_previous(args: argparse.Namespace, ctx: AppContext) -> int:
    return _step(ctx, -1)


def cmd_forward(args: argparse.Namespace, ctx: AppContext) -> int:
    return _step(ctx, +1)


def _step(ctx: AppContext, direction: int) -> int:
    from ai_wallpaper.desktop import set_existing_wallpaper

    history = History(ctx.paths.history_db)
    target = history.step_wallpaper(direction)
    if target is None:
        raise WallpaperError("no previous wallpaper to go back to" if direction < 0 else
                             "already at the newest wallpaper",
                             hint="`ai-wallpaper history` lists the runs; files that are gone are skipped")
    setter, detail = set_existing_wallpaper(target, ctx.settings.desktop)
    if setter is not None:
        history.record_wallpaper(str(target), run_id=None, action="previous" if direction < 0 else "forward")
    print(f"{target}\n{detail}")
    return int(ExitCode.OK)


def cmd_favorite(args: argparse.Namespace, ctx: AppContext) -> int:
    history = History(ctx.paths.history_db)
    run_id = args.run_id
    if run_id is None:
        ok = [r for r in history.list_runs(200) if r.status == "success"]
        if not ok:
            raise WallpaperError("no successful run to mark", hint="`ai-wallpaper history` lists run ids")
        run_id = ok[0].run_id
    try:
        history.set_favorite(run_id, not args.remove)
    except KeyError:
        raise WallpaperError(f"no run {run_id!r} in the history",
                             hint="`ai-wallpaper history` lists run ids") from None
    print(f"{run_id}: {'no longer a favorite' if args.remove else 'favorite (never pruned)'}")
    return int(ExitCode.OK)
