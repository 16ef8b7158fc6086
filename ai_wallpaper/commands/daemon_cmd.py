"""Daemon and history commands: daemon, status, history, previous, favorite, next, install-service."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from ai_wallpaper.context import AppContext
from ai_wallpaper.errors import ConfigError, ExitCode, WallpaperError
from ai_wallpaper.history import History, RunRecord
from ai_wallpaper.lock import lock_holder
from ai_wallpaper.settings import ScheduleSettings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("daemon", parents=[common], help="run the scheduler in the foreground",
                       description="Generate a wallpaper on the configured schedule (systemd runs this).")
    p.add_argument("--job-command", help=argparse.SUPPRESS)  # tests: JSON argv with {run_id} {trigger}
    p.add_argument("--stop-grace", type=float, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_daemon)
    p = sub.add_parser("status", parents=[common], help="is the daemon running, last and next run")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("history", parents=[common], help="list recent runs")
    p.add_argument("-n", "--limit", type=int, default=20, help="how many runs (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("previous", parents=[common], help="set the previous wallpaper again")
    p.set_defaults(func=cmd_previous)
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
    from ai_wallpaper.daemon import CHILD_STOP_GRACE_S, Daemon

    job_command = None
    if args.job_command:
        job_command = json.loads(args.job_command)
    daemon = Daemon(ctx.settings, ctx.paths, config_file=ctx.config_file, job_command=job_command,
                    stop_grace_s=args.stop_grace or CHILD_STOP_GRACE_S)
    return daemon.run()


def cmd_next(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.daemon import JobRunner, generate_command

    pid = lock_holder(ctx.paths.daemon_lock)
    if pid and pid > 0:
        state = _read_state(ctx)
        if state.get("current_run_id"):
            print(f"the daemon (pid {pid}) is already running {state['current_run_id']}")
            return int(ExitCode.OK)
        os.kill(pid, signal.SIGUSR1)
        print(f"asked the daemon (pid {pid}) to generate now; follow it with `ai-wallpaper status`")
        return int(ExitCode.OK)
    runner = JobRunner(History(ctx.paths.history_db), generate_command(ctx.config_file),
                       timeout_s=ctx.settings.schedule.run_timeout_minutes * 60.0)
    try:
        outcome = runner.run("next")
    except KeyboardInterrupt:
        runner.stopping.set()
        runner.terminate_child()
        return int(ExitCode.INTERRUPTED)
    assert outcome is not None
    print(f"run {outcome.run_id}: {outcome.status}" + (f"\n{outcome.error}" if outcome.error else ""))
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


def cmd_status(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.daemon import describe_schedule, next_fire_time

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
            print(f"  error: {last.error.splitlines()[0]}")
        if last.wallpaper:
            print(f"  wallpaper: {last.wallpaper}")
    return int(ExitCode.OK)


def cmd_history(args: argparse.Namespace, ctx: AppContext) -> int:
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
        note = r.error.splitlines()[0][:60] if r.error else _theme(r)
        print(f"{r.run_id:<24} {r.started_at.astimezone():%Y-%m-%d %H:%M:%S} {r.trigger:<9} {r.status:<9} "
              f"{secs:>6}  {'*' if r.favorite else ' '} {note}")
    return int(ExitCode.OK)


# --- previous / favorite ---------------------------------------------------------------------------
def cmd_previous(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.desktop import set_existing_wallpaper

    history = History(ctx.paths.history_db)
    previous = history.previous_wallpaper()
    if previous is None:
        raise WallpaperError("no previous wallpaper to go back to",
                             hint="the history has fewer than two wallpapers whose files still exist")
    setter, detail = set_existing_wallpaper(previous, ctx.settings.desktop)
    if setter is not None:
        history.record_wallpaper(str(previous), run_id=None, action="previous")
    print(f"{previous}\n{detail}")
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


# --- systemd units ---------------------------------------------------------------------------------
SERVICE = "ai-wallpaper.service"
TIMER = "ai-wallpaper.timer"
ONESHOT = "ai-wallpaper-oneshot.service"
_UNIT_HEAD = """\
[Unit]
# Shown by `systemctl --user status`.
Description={description}
# Stopped and restarted together with the graphical session (logout stops it).
PartOf=graphical-session.target
# Start once the session is up, so DISPLAY, WAYLAND_DISPLAY and the D-Bus address are imported.
After=graphical-session.target
"""
_PRIORITY = """\
# Lowest CPU priority: the desktop stays responsive while a wallpaper renders.
Nice=19
# CPU-bound, non-interactive work: the kernel's batch policy.
CPUSchedulingPolicy=batch
# Disk I/O only when nothing else wants the disk.
IOSchedulingClass=idle
# SIGTERM to the main process only; it cancels its generation child itself, then exits.
KillMode=mixed
# Above the daemon's 40 s grace for a generation to cancel, so cleanup is never cut short.
TimeoutStopSec=60
# Python output unbuffered, so log lines reach the journal at once.
Environment=PYTHONUNBUFFERED=1
"""
_SERVICE_BODY = """\
# Give up after 5 failed starts in 10 minutes: a broken config is not fixed by retrying.
StartLimitIntervalSec=600
# (see StartLimitIntervalSec)
StartLimitBurst=5

[Service]
# The daemon runs in the foreground; systemd watches the process it started.
Type=exec
# The scheduler; each generation runs in a fresh child process (GPU memory freed between runs).
ExecStart={exec_start} daemon
# Restart after a crash, not after `systemctl --user stop`.
Restart=on-failure
# Pause before restarting so a crash loop does not spin.
RestartSec=30
# Exit 3 = config error, 7 = another daemon holds the lock: restarting cannot help.
RestartPreventExitStatus=3 7
{priority}
[Install]
# Start with the graphical session (`systemctl --user enable` links it there).
WantedBy=graphical-session.target
"""
_ONESHOT_BODY = """
[Service]
# One generation per start; the timer starts it.
Type=oneshot
# Generate once; the history records it as a scheduled run.
ExecStart={exec_start} generate --trigger schedule
# A generation may take long (8K enhancement): allow the configured run timeout.
TimeoutStartSec={timeout_min}min
{priority}"""
_TIMER = """\
[Unit]
# Shown by `systemctl --user list-timers`.
Description=AI wallpaper schedule (timer variant of ai-wallpaper.service; enable only one of them)
# Stop the timer with the graphical session.
PartOf=graphical-session.target

[Timer]
# When to generate (converted from schedule.* in settings.yaml).
{when}
# Catch up once after the machine was off or asleep at the scheduled time.
Persistent=true
# Random delay (schedule.jitter_seconds).
RandomizedDelaySec={jitter}
# The unit the timer starts.
Unit=ai-wallpaper-oneshot.service

[Install]
# Timers of a user session hang off timers.target.
WantedBy=timers.target
"""


def _cron_field(value: str, what: str) -> str:
    if "/" in value and "-" in value:
        raise ConfigError(f"schedule.cron: {what} field {value!r}: a stepped range has no systemd form",
                          hint="use the daemon (ai-wallpaper install-service without --timer)")
    value = value.replace("-", "..")
    return value.replace("*/", "0/" if what in ("minute", "hour") else "1/")


def on_calendar(schedule: ScheduleSettings) -> str:
    """schedule.* as timer lines: intervals → OnActiveSec/OnUnitActiveSec, cron → OnCalendar."""
    seconds = schedule.interval_seconds or (schedule.interval_minutes or 0) * 60
    if seconds:
        return f"OnActiveSec={seconds}s\nOnUnitActiveSec={seconds}s"
    fields = (schedule.cron or "").split()
    if len(fields) != 5:
        raise ConfigError(f"schedule.cron: {schedule.cron!r} is not a 5-field crontab line")
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        raise ConfigError("schedule.cron: day-of-month and day-of-week both set "
                          "(cron ORs them, systemd ANDs them)",
                          hint="use the daemon, or restrict only one of them")
    names = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    days = "" if dow == "*" else ",".join(
        "..".join(names[int(x)] if x.isdigit() else x.capitalize() for x in part.split("-"))
        for part in dow.split(",")) + " "
    tz = f" {schedule.timezone}" if schedule.timezone else ""
    return (f"OnCalendar={days}*-{_cron_field(month, 'month')}-{_cron_field(day, 'day')} "
            f"{_cron_field(hour, 'hour')}:{_cron_field(minute, 'minute')}:00{tz}")


def _quote_exec(argv: list[str]) -> str:
    return " ".join(f'"{a}"' if any(c in a for c in " \t'\"\\") else a for a in argv)


def render_units(exec_start: str, schedule: ScheduleSettings) -> dict[str, str]:
    """The three unit files' text. exec_start: the command that runs `ai-wallpaper` (no subcommand)."""
    head = ("# ai-wallpaper user unit. `ai-wallpaper install-service` writes it with this machine's\n"
            "# interpreter path into ~/.config/systemd/user/; every directive is explained above it.\n")
    service = (head + _UNIT_HEAD.format(description="AI wallpaper daemon (scheduled SDXL wallpapers)")
               + _SERVICE_BODY.format(exec_start=exec_start, priority=_PRIORITY))
    oneshot = (head + _UNIT_HEAD.format(description="AI wallpaper: one generation (ai-wallpaper.timer)")
               + _ONESHOT_BODY.format(exec_start=exec_start, timeout_min=schedule.run_timeout_minutes,
                                      priority=_PRIORITY))
    timer = head + _TIMER.format(when=on_calendar(schedule), jitter=f"{schedule.jitter_seconds}s")
    return {SERVICE: service, ONESHOT: oneshot, TIMER: timer}


def user_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def cmd_install_service(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper import atomic

    argv = [sys.executable, "-m", "ai_wallpaper"]
    units = render_units(_quote_exec(argv), ctx.settings.schedule)
    if ctx.config_file:  # after the subcommand (see daemon.generate_command)
        config = f" --config {_quote_exec([str(ctx.config_file.resolve())])}"
        units = {name: text.replace(" daemon\n", f" daemon{config}\n").replace(
            " generate --trigger schedule\n", f" generate{config} --trigger schedule\n")
            for name, text in units.items()}
    wanted = [ONESHOT, TIMER] if args.timer else [SERVICE]
    if args.print_only:
        for name in wanted:
            print(f"# --- {name}\n{units[name]}")
        return int(ExitCode.OK)
    unit_dir = user_unit_dir()
    for name in wanted:
        atomic.write_text(unit_dir / name, units[name])
        print(f"wrote {unit_dir / name}")
    enable = TIMER if args.timer else SERVICE
    other = SERVICE if args.timer else TIMER
    print("\nnow run:")
    print("  systemctl --user daemon-reload")
    print(f"  systemctl --user disable --now {other} 2>/dev/null  # only one variant at a time")
    print(f"  systemctl --user enable --now {enable}")
    print(f"  journalctl --user -u {'ai-wallpaper-oneshot' if args.timer else 'ai-wallpaper'} -f   # logs")
    print("\nsway / Hyprland (no session manager imports the display variables), once per login,")
    print("e.g. in the sway config (exec) or hyprland.conf (exec-once):")
    print("  systemctl --user import-environment WAYLAND_DISPLAY DISPLAY XDG_CURRENT_DESKTOP "
          "SWAYSOCK HYPRLAND_INSTANCE_SIGNATURE")
    print("  dbus-update-activation-environment --systemd WAYLAND_DISPLAY XDG_CURRENT_DESKTOP")
    print(f"\nthe unit runs: {shlex.join(argv)} {'generate' if args.timer else 'daemon'}"
          + (f" --config {ctx.config_file.resolve()}" if ctx.config_file else ""))
    return int(ExitCode.OK)
