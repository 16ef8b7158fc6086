"""The scheduler daemon: APScheduler 3.11, one job at a time, each generation in a fresh child process.

The child process and its bookkeeping are job_runner's (a row always ends success, failed with the
child's own error message, or cancelled). At start the daemon fails the rows of runs whose process is
gone (a crash, kill -9 or power off mid-run) and removes stale atomic-write temp files. A run whose
daemon was killed survives it (own session) and records itself; a new daemon starts nothing while
such an orphan still runs.

Why BackgroundScheduler rather than BlockingScheduler: the main thread stays free for signals
(SIGTERM/SIGINT stop, SIGUSR1 = run now from `ai-wallpaper next`, where the OS has it), for the state
file and for systemd (`Type=notify`: READY=1 once the schedule runs, STATUS= with the next run time or
the running stage and percent, STOPPING=1; service/sd_notify.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ai_wallpaper.config.settings import ScheduleSettings, Settings
from ai_wallpaper.core import atomic, log
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.core.progress import describe, read_run_progress
from ai_wallpaper.render.run_record import new_run_id
from ai_wallpaper.service.crontab import split_cron, weekday_names
from ai_wallpaper.service.job_runner import JobRunner, generate_command
from ai_wallpaper.service.lock import DaemonLock
from ai_wallpaper.service.sd_notify import Notifier

logger = log.get(__name__)
JOB_ID = "generate"
GONE = "the process running it is gone (crash, kill or power off)"
# A temp file this old in the top level of our folders was left by a crash (a live write takes seconds).
STALE_TEMP_AGE_S = 3600.0


# --- schedule ---------------------------------------------------------------------------------
def schedule_timezone(schedule: ScheduleSettings) -> tzinfo:
    if schedule.timezone is None:
        import tzlocal

        return tzlocal.get_localzone()
    try:
        return ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"schedule.timezone: unknown time zone {schedule.timezone!r}",
                          hint="an IANA name like Europe/Lisbon or America/New_York, or null for the "
                               "system zone") from None


def build_trigger(schedule: ScheduleSettings, *, start_date: datetime | None = None,
                  jitter: bool = True) -> Any:
    """The APScheduler trigger: interval_seconds, else interval_minutes, else the cron line."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    tz = schedule_timezone(schedule)
    jitter_s = schedule.jitter_seconds if jitter and schedule.jitter_seconds else None
    if schedule.interval_seconds or schedule.interval_minutes:
        seconds = schedule.interval_seconds or (schedule.interval_minutes or 0) * 60
        return IntervalTrigger(seconds=seconds, start_date=start_date, timezone=tz, jitter=jitter_s)
    if not schedule.cron:
        raise ConfigError("schedule: no cron, interval_minutes or interval_seconds set",
                          hint='e.g. schedule.cron: "0 7 * * *" (every day at 07:00)')
    try:
        f = split_cron(schedule.cron)
        return CronTrigger(minute=f.minute, hour=f.hour, day=f.day, month=f.month,
                           day_of_week=weekday_names(f.weekday), start_date=start_date, timezone=tz, jitter=jitter_s)
    except ValueError as exc:
        raise ConfigError(f"schedule.cron: {schedule.cron!r}: {exc}",
                          hint='crontab syntax, e.g. "0 7 * * *" or "*/30 8-22 * * 1-5"') from None


def describe_schedule(schedule: ScheduleSettings) -> str:
    if schedule.interval_seconds:
        what = f"every {schedule.interval_seconds} s"
    elif schedule.interval_minutes:
        what = f"every {schedule.interval_minutes} min"
    else:
        what = f"cron {schedule.cron!r}"
    tz = schedule.timezone or f"system zone {schedule_timezone(schedule)}"
    jitter = f", jitter up to {schedule.jitter_seconds} s" if schedule.jitter_seconds else ""
    return f"{what} ({tz}{jitter})"


def next_fire_time(schedule: ScheduleSettings, now: datetime | None = None) -> datetime | None:
    tz = schedule_timezone(schedule)
    now = now or datetime.now(tz)
    result: datetime | None = build_trigger(schedule, jitter=False).get_next_fire_time(None, now)
    return result


def missed_run(schedule: ScheduleSettings, last_start: datetime, now: datetime) -> datetime | None:
    """The first scheduled time after `last_start` if it has already passed (a missed run), else None."""
    trigger = build_trigger(schedule, start_date=last_start, jitter=False)
    fire: datetime | None = trigger.get_next_fire_time(None, last_start + timedelta(seconds=1))
    return fire if fire is not None and fire <= now else None


# --- the daemon ----------------------------------------------------------------------------------
class Daemon:
    def __init__(self, settings: Settings, paths: Paths, *, config_file: Path | None = None) -> None:
        self.settings = settings
        self.schedule = settings.schedule
        self.paths = paths
        self.tz = schedule_timezone(self.schedule)
        self.trigger = build_trigger(self.schedule)  # validates before we take the lock
        self.history = History(paths.history_db)
        self.runner = JobRunner(self.history, generate_command(config_file),
                                timeout_s=self.schedule.run_timeout_minutes * 60.0, progress_file=paths.run_progress)
        self.lock = DaemonLock(paths.daemon_lock)
        self._stop = threading.Event()
        self._run_now = threading.Event()
        self._pending_trigger = "schedule"
        self._trigger_lock = threading.Lock()
        self._current: str | None = None
        self._started_at = datetime.now(self.tz)
        self._scheduler: Any = None
        self.notifier = Notifier()  # takes NOTIFY_SOCKET out of the environment the children get

    # Signal handlers only set flags; the main loop acts on them.
    def _on_stop(self, signum: int, _frame: Any) -> None:
        logger.info("stop requested", signal=signal.Signals(signum).name)
        self.runner.on_signal("the daemon is stopping")  # a second SIGTERM kills the child at once
        self._stop.set()

    def _on_run_now(self, _signum: int, _frame: Any) -> None:
        self._run_now.set()

    def _job(self) -> None:
        with self._trigger_lock:
            trigger, self._pending_trigger = self._pending_trigger, "schedule"
        if self._orphan_running():
            return
        run_id = new_run_id()
        self._current = run_id
        self.write_state()
        try:
            self.runner.run(trigger, run_id)
        except Exception as exc:  # a broken job must never take the scheduler down with it
            logger.exception("run crashed in the daemon")
            error = f"daemon error while running the job: {type(exc).__name__}: {exc}"
            if not self.history.record_unstarted(run_id, trigger=trigger, status="failed", error=error):
                self.history.finish_if_running(run_id, status="failed", error=error)
        finally:
            self._current = None
            self.write_state()

    def _orphan_running(self) -> bool:
        """A run of a killed daemon (or a manual `generate`) may still be going: one job at a time."""
        self.history.fail_stale_running(GONE)
        others = self.history.active_runs()
        if others:
            logger.warning("another run is still in progress; not starting one now",
                           other_run=others[0].run_id, other_pid=others[0].pid)
        return bool(others)

    def _fire_now(self, trigger: str) -> None:
        if self.runner.busy:
            logger.warning("a run is already in progress; not starting another", requested=trigger)
            return
        with self._trigger_lock:
            self._pending_trigger = trigger
        self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(self.tz))

    def catch_up_due(self) -> datetime | None:
        if not self.schedule.catch_up:
            return None
        last = self.history.last_run()
        if last is None:
            return None
        return missed_run(self.schedule, last.started_at, datetime.now(self.tz))

    def status_line(self) -> str:
        """What the daemon is doing, in one line: systemd's STATUS=."""
        if current := self._current:
            progress = read_run_progress(self.paths.run_progress(current))
            return f"running {current}: {describe(progress) if progress else 'starting'}"
        job = self._scheduler.get_job(JOB_ID) if self._scheduler is not None else None
        next_run = job.next_run_time if job is not None else None
        return f"idle · next run at {next_run:%Y-%m-%d %H:%M:%S %Z}" if next_run else "idle · no run scheduled"

    def write_state(self) -> None:
        job = self._scheduler.get_job(JOB_ID) if self._scheduler is not None else None
        next_run = job.next_run_time if job is not None else None
        atomic.write_json(self.paths.daemon_state, {
            "pid": os.getpid(),
            "status": "stopped" if self._stop.is_set() else "running",
            "started_at": self._started_at.isoformat(),
            "schedule": describe_schedule(self.schedule),
            "next_run_time": next_run.isoformat() if next_run and not self._stop.is_set() else None,
            "current_run_id": self._current,
            "updated_at": datetime.now(self.tz).isoformat(),
        })

    def run(self) -> int:
        """Run until SIGTERM/SIGINT. Raises LockedError if another daemon holds the lock."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        # Handlers first: `next` signals the pid it reads from the lock file, and SIGUSR1's default
        # action would kill a daemon that had published its pid but not yet installed its handler.
        # (Windows has no SIGUSR1: there `next` says so and the schedule alone starts runs.)
        old_handlers = {s: signal.signal(s, self._on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        if hasattr(signal, "SIGUSR1"):
            old_handlers[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._on_run_now)
        try:
            self.lock.acquire()
        except BaseException:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            raise
        try:
            for folder in (self.paths.state_dir, self.paths.wallpapers_dir, self.paths.cache_dir):
                atomic.remove_stale_temp_files(folder, older_than_s=STALE_TEMP_AGE_S)
            stale = self.history.fail_stale_running(GONE)
            if stale:
                logger.warning("marked interrupted runs as failed", count=stale)
            missed = self.catch_up_due()
            self._scheduler = BackgroundScheduler(
                timezone=self.tz, executors={"default": ThreadPoolExecutor(1)},
                job_defaults={"coalesce": True, "max_instances": 1,
                              "misfire_grace_time": self.schedule.misfire_grace_seconds})
            self._scheduler.add_job(self._job, self.trigger, id=JOB_ID, name="generate wallpaper")
            self._scheduler.start()
            logger.info("daemon started", pid=os.getpid(), schedule=describe_schedule(self.schedule),
                        next_run=str(self._scheduler.get_job(JOB_ID).next_run_time))
            if missed is not None:
                logger.info("a scheduled run was missed; catching up once", missed=missed.isoformat())
                self._fire_now("catch-up")
            self.write_state()
            self.notifier.ready(self.status_line())
            while not self._stop.wait(timeout=1.0):
                if self._run_now.is_set():
                    self._run_now.clear()
                    self._fire_now("next")
                self.notifier.status(self.status_line())
            self._shutdown()
            return 0
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self.lock.release()
            self.notifier.close()

    def _shutdown(self) -> None:
        logger.info("daemon stopping")
        self.notifier.stopping("stopping" + (f": cancelling {self._current}" if self._current else ""))
        self._scheduler.shutdown(wait=False)  # no new runs; the current one is ours to stop
        self.runner.request_stop("the daemon is stopping")  # the job thread stops the child
        deadline = time.monotonic() + self.runner.stop_grace_s + 10
        while self.runner.busy and time.monotonic() < deadline:  # the job thread settles the row
            time.sleep(0.05)
        if self._current:
            self.history.finish_if_running(self._current, status="cancelled", error="daemon stopped")
        self.write_state()
        logger.info("daemon stopped")
