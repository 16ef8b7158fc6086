"""Daemon and history commands: daemon, status, history (`show` is in history_cmd), previous, favorite, next,
install-service."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any

from ai_wallpaper.commands import history_cmd, json_output
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.commands.service_cmd import cmd_install_service
from ai_wallpaper.commands.status_cmd import cmd_status, headline, read_state
from ai_wallpaper.core.errors import ExitCode, WallpaperError
from ai_wallpaper.core.history import History, RunRecord
from ai_wallpaper.service.lock import lock_holder


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("daemon", parents=[common], help="run the scheduler in the foreground",
                       description="Generate a wallpaper on the configured schedule (systemd runs this).")
    p.set_defaults(func=cmd_daemon)
    p = sub.add_parser("status", parents=[common], help="is the daemon running, the current, last and next run",
                       description="Whether the daemon runs, the run in progress (its stage, percent and "
                                   "elapsed time), the next scheduled run and the last run with its error.")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("history", parents=[common], help="list recent runs, or `history show RUN_ID`",
                       description="List recent runs; `history show [RUN_ID]` prints one run's stages with "
                                   "their time, peak memory and quality figures.")
    history_cmd.add_arguments(p)
    p.add_argument("-n", "--limit", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--json", action="store_true", help='print JSON ({"runs": [...]}) instead of a table')
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
        state = read_state(ctx)
        if state.get("current_run_id"):
            print(f"the daemon (pid {pid}) is already running {state['current_run_id']}")
            return int(ExitCode.OK)
        if not hasattr(signal, "SIGUSR1"):
            raise WallpaperError(f"asking the running daemon (pid {pid}) for a run needs SIGUSR1, which "
                                 f"{sys.platform} does not have",
                                 hint="stop the daemon and run `ai-wallpaper next` (or `generate`) yourself")
        os.kill(pid, signal.SIGUSR1)
        print(f"asked the daemon (pid {pid}) to generate now; follow it with `ai-wallpaper status`")
        return int(ExitCode.OK)
    # The child's output comes through ours: on a terminal it logs for a person, else as we were told.
    log_format = args.log_format or ("console" if sys.stderr.isatty() else None)
    command = generate_command(ctx.config_file) + (["--log-format", log_format] if log_format else [])
    runner = JobRunner(History(ctx.paths.history_db), command,
                       timeout_s=ctx.settings.schedule.run_timeout_minutes * 60.0,
                       progress_file=ctx.paths.run_progress)

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
    # The child printed its own `error:` block above (its output is passed through): not twice.
    shown = outcome.error_already_shown or not outcome.error
    print(f"run {outcome.run_id}: {outcome.status}" + ("" if shown else f"\n{outcome.error}"))
    if outcome.status == "cancelled":
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK) if outcome.status == "success" else int(ExitCode.RUN)


# --- history ------------------------------------------------------------------------------------
def _theme(rec: RunRecord) -> str:
    if rec.theme_key:
        return rec.theme_key
    prompt = rec.plan.get("prompt") if isinstance(rec.plan, dict) else None
    return (prompt[:30] + "…") if isinstance(prompt, str) and len(prompt) > 30 else (prompt or "-")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_history(args: argparse.Namespace, ctx: AppContext) -> int:
    if args.history_action == "show":
        return history_cmd.cmd_history_show(args, ctx)
    if args.history_action == "gallery":
        return history_cmd.cmd_history_gallery(args, ctx)
    runs = History(ctx.paths.history_db).list_runs(args.limit)
    if args.json:
        json_output.emit({"runs": [json_output.run_json(r) for r in runs]})
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
