"""The scheduler daemon: APScheduler 3.11, one job at a time, each generation in a fresh child process.

Why a child process per run: CUDA/torch never give all memory back inside a process; a fresh
interpreter per run returns everything to the OS between runs. The child is `ai-wallpaper generate
--run-id ID --trigger T`; it records its own history row. If it dies without finishing that row
(killed, crashed, timed out), the daemon finishes it as failed (or cancelled on stop).

Why BackgroundScheduler rather than BlockingScheduler: the main thread stays free for signals
(SIGTERM/SIGINT stop, SIGUSR1 = run now from `ai-wallpaper next`) and for the state file.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ai_wallpaper import atomic, log
from ai_wallpaper.errors import ConfigError
from ai_wallpaper.history import FinalStatus, History
from ai_wallpaper.lock import DaemonLock
from ai_wallpaper.paths import Paths
from ai_wallpaper.run_record import new_run_id
from ai_wallpaper.settings import ScheduleSettings, Settings

logger = log.get(__name__)
JOB_ID = "generate"
# The child gets this long to cancel cleanly after SIGTERM, then SIGKILL. Must stay below the unit's
# TimeoutStopSec (60 s) so systemd never has to kill the daemon itself.
CHILD_STOP_GRACE_S = 40.0
_CRON_DOW = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


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


def _crontab_dow(field: str) -> str:
    """Crontab weekdays (0 or 7 = Sunday) → names, because APScheduler 3 counts 0 as Monday."""
    parts = []
    for token in field.split(","):
        m = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", token)
        if not m or (m.group(1) == "*" and not m.group(3)):
            parts.append(token)  # names and '*' pass through; APScheduler validates them
            continue
        lo = 0 if m.group(1) == "*" else int(m.group(1))
        hi = 6 if m.group(1) == "*" else int(m.group(2) or m.group(1))
        if hi > 7 or lo > hi:
            raise ValueError(f"bad day of week {token!r}")
        days = range(lo, hi + 1, int(m.group(3) or 1))
        parts.extend(dict.fromkeys(_CRON_DOW[d] for d in days))
    return ",".join(dict.fromkeys(parts))


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
    fields = schedule.cron.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"expected 5 fields (min hour day month weekday), got {len(fields)}")
        minute, hour, day, month, dow = fields
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=_crontab_dow(dow),
                           start_date=start_date, timezone=tz, jitter=jitter_s)
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


# --- one generation in a child process ----------------------------------------------------------
def generate_command(config_file: Path | None) -> list[str]:
    """The default job: `python -m ai_wallpaper generate [--config F] --run-id ID --trigger T`."""
    # --config after the subcommand: argparse lets a subparser's default overwrite a global option.
    config = ["--config", str(config_file)] if config_file else []
    return [sys.executable, "-m", "ai_wallpaper", "generate", *config, "--run-id", "{run_id}",
            "--trigger", "{trigger}"]


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: FinalStatus
    returncode: int | None
    error: str | None


class JobRunner:
    """Runs one generation child at a time and makes sure its history row ends finished."""

    def __init__(self, history: History, command: Sequence[str], *, timeout_s: float,
                 stop_grace_s: float = CHILD_STOP_GRACE_S) -> None:
        self.history = history
        self.command = list(command)
        self.timeout_s = timeout_s
        self.stop_grace_s = stop_grace_s
        self.stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def run(self, trigger: str, run_id: str | None = None) -> RunOutcome | None:
        """Run one generation; None if one is already running (one job at a time)."""
        if not self._lock.acquire(blocking=False):
            logger.warning("a run is already in progress; this one is skipped", trigger=trigger)
            return None
        run_id = run_id or new_run_id()
        log.bind_run(run_id)
        try:
            return self._run(run_id, trigger)
        finally:
            log.unbind_run()
            self._lock.release()

    def _run(self, run_id: str, trigger: str) -> RunOutcome:
        argv = [a.replace("{run_id}", run_id).replace("{trigger}", trigger) for a in self.command]
        started = time.monotonic()
        logger.info("run starting", trigger=trigger)
        tail: deque[str] = deque(maxlen=30)
        # Own session: a terminal's Ctrl-C reaches only the daemon, which then stops the child itself.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self._child = proc
        reader = threading.Thread(target=_pump, args=(proc, tail), daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            logger.error("run timed out; stopping it", timeout_s=self.timeout_s)
            self.terminate_child()
        finally:
            self._child = None
        reader.join(timeout=5)
        rc = proc.returncode
        status: FinalStatus
        if rc == 0 and not timed_out:
            status, error = "success", None
        elif self.stopping.is_set():
            status, error = "cancelled", f"daemon stopping; generation exited with {_rc_text(rc)}"
        else:
            status = "failed"
            why = f"timed out after {self.timeout_s:.0f} s" if timed_out else f"exited with {_rc_text(rc)}"
            error = f"generation process {why}" + (": " + _last_lines(tail) if tail else "")
        self._settle_row(run_id, trigger, proc.pid, status, error)
        logger.info("run finished", status=status, returncode=rc,
                    seconds=round(time.monotonic() - started, 2), error=error)
        return RunOutcome(run_id, status, rc, error)

    def _settle_row(self, run_id: str, trigger: str, pid: int, status: FinalStatus,
                    error: str | None) -> None:
        record = self.history.get(run_id)
        if record is None:  # died before recording (bad config, import error): record it ourselves
            self.history.start_run(run_id, trigger=trigger, plan={}, run_dir=None, pid=pid)
            self.history.finish_run(run_id, status=status, error=error)
        elif record.status == "running":
            self.history.finish_if_running(run_id, status="failed" if status == "success" else status,
                                           error=error or "generation exited without finishing its run")

    def terminate_child(self) -> None:
        """SIGTERM the child's process group, wait up to the grace period, then SIGKILL it."""
        proc = self._child
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_grace_s)
        except subprocess.TimeoutExpired:
            logger.warning("generation did not stop in time; killing it", grace_s=self.stop_grace_s)
            _signal_group(proc, signal.SIGKILL)
            proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _pump(proc: subprocess.Popen[bytes], tail: deque[str]) -> None:
    """Pass the child's output through to ours (journald) and keep the last lines for the error."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        sys.stderr.buffer.write(raw)
        sys.stderr.buffer.flush()
        tail.append(raw.decode("utf-8", errors="replace").rstrip())


def _rc_text(rc: int | None) -> str:
    if rc is not None and rc < 0:
        return f"signal {signal.Signals(-rc).name}"
    return f"exit code {rc}"


def _last_lines(tail: deque[str], n: int = 6) -> str:
    lines = [line for line in tail if line.strip()]
    return "\n".join(lines[-n:])


# --- the daemon ----------------------------------------------------------------------------------
class Daemon:
    def __init__(self, settings: Settings, paths: Paths, *, config_file: Path | None = None,
                 job_command: Sequence[str] | None = None, stop_grace_s: float = CHILD_STOP_GRACE_S) -> None:
        self.settings = settings
        self.schedule = settings.schedule
        self.paths = paths
        self.tz = schedule_timezone(self.schedule)
        self.trigger = build_trigger(self.schedule)  # validates before we take the lock
        self.history = History(paths.history_db)
        self.runner = JobRunner(self.history, job_command or generate_command(config_file),
                                timeout_s=self.schedule.run_timeout_minutes * 60.0, stop_grace_s=stop_grace_s)
        self.lock = DaemonLock(paths.daemon_lock)
        self._stop = threading.Event()
        self._run_now = threading.Event()
        self._pending_trigger = "schedule"
        self._trigger_lock = threading.Lock()
        self._current: str | None = None
        self._started_at = datetime.now(self.tz)
        self._scheduler: Any = None

    # Signal handlers only set flags; the main loop acts on them.
    def _on_stop(self, signum: int, _frame: Any) -> None:
        logger.info("stop requested", signal=signal.Signals(signum).name)
        self.runner.stopping.set()
        self._stop.set()

    def _on_run_now(self, _signum: int, _frame: Any) -> None:
        self._run_now.set()

    def _job(self) -> None:
        with self._trigger_lock:
            trigger, self._pending_trigger = self._pending_trigger, "schedule"
        run_id = new_run_id()
        self._current = run_id
        self.write_state()
        try:
            self.runner.run(trigger, run_id)
        except Exception:  # a broken job must never take the scheduler down with it
            logger.exception("run crashed in the daemon")
            self.history.finish_if_running(run_id, status="failed",
                                           error="daemon error while running the job")
        finally:
            self._current = None
            self.write_state()

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
        old_handlers = {s: signal.signal(s, self._on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        old_handlers[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._on_run_now)
        try:
            self.lock.acquire()
        except BaseException:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            raise
        try:
            stale = self.history.fail_stale_running(
                "the process running it is gone (crash, kill or power off)")
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
            while not self._stop.wait(timeout=1.0):
                if self._run_now.is_set():
                    self._run_now.clear()
                    self._fire_now("next")
            self._shutdown()
            return 0
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self.lock.release()

    def _shutdown(self) -> None:
        logger.info("daemon stopping")
        self._scheduler.shutdown(wait=False)  # no new runs; the current one is ours to stop
        self.runner.terminate_child()
        deadline = time.monotonic() + 10
        while self.runner.busy and time.monotonic() < deadline:  # the job thread settles the row
            time.sleep(0.05)
        if self._current:
            self.history.finish_if_running(self._current, status="cancelled", error="daemon stopped")
        self.write_state()
        logger.info("daemon stopped")
