r"""systemd user units for `ai-wallpaper install-service`: their text, quoting and hardening.

Paths in a unit (the interpreter, --config) are the user's and may hold anything, so every word is
written for systemd's parser (systemd.service(5) "Command lines", systemd.syntax(7) "Quoting"):
 - a word holding blanks, quotes, backslashes, ';' or control characters is double-quoted, with the
   C escapes \\ \" and \xNN inside;
 - '%' starts a specifier (%h = home) everywhere: written '%%';
 - '$' in ExecStart= arguments is environment substitution ($VAR, ${VAR}): written '$$'. The program
   path itself is never substituted (so its '$' stays single), but argv[0], a copy of it, is: then
   the '@' prefix passes the path and an escaped argv[0] separately;
 - Environment= takes C escapes and specifiers but no '$' substitution.
systemd refuses a program path holding '"', "'", '\' or control characters ("Executable name contains
special characters"); such an interpreter path is refused here, with the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ai_wallpaper.config.settings import ScheduleSettings
from ai_wallpaper.core.errors import ConfigError, WallpaperError
from ai_wallpaper.service.crontab import WEEKDAYS, split_cron, weekday_names

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
{environment}
# New files (wallpapers, history, run folders, logs) are this user's alone, as when run by hand.
UMask=0077
# Nothing the daemon starts (generation, wallpaper setters) may gain privileges through setuid
# binaries or file capabilities: none of it needs any.
NoNewPrivileges=yes
# No switch to another execution domain (personality(2)), such as one that makes data executable.
LockPersonality=yes
# No file may be made setuid/setgid, so a bug cannot leave a privileged program behind.
RestrictSUIDSGID=yes
# Resource limits, off by default. An 8K run needs many GB of RAM (the fp32 SDXL UNet alone is 10 GB,
# and the upscale/enhance stages hold several 8K images), and torch starts about one thread per CPU core
# for each of its pools, so limits must be generous or runs die (OOM kill, "Resource temporarily
# unavailable"). To pick values, watch a full run at your largest size: `systemctl --user status
# ai-wallpaper` shows Memory: (newer systemd also its peak) and Tasks:, or run it by hand under
# `/usr/bin/time -v` (Maximum resident set size). Then set MemoryHigh= about 25 % above the peak
# (memory is reclaimed, the run slowed, above it), MemoryMax= about 50 % above (the run is killed
# above it) and TasksMax= at least twice the Tasks: count. The memory limits need the memory
# controller delegated to the user manager (the default on cgroup v2 systems). Example values:
#MemoryHigh=24G
#MemoryMax=32G
#TasksMax=1024
"""
_SERVICE_BODY = """\
# Give up after 5 failed starts in 10 minutes: a broken config is not fixed by retrying.
StartLimitIntervalSec=600
# (see StartLimitIntervalSec)
StartLimitBurst=5

[Service]
# The daemon runs in the foreground and tells systemd when its schedule runs (READY=1) and what it is
# doing (STATUS=: the next run time, or the running stage and percent, in `systemctl --user status`).
Type=notify
# Only the daemon itself may notify; it relays its generation child's progress.
NotifyAccess=main
# The scheduler; each generation runs in a fresh child process (GPU memory freed between runs).
ExecStart={exec_start} daemon{config}
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
ExecStart={exec_start} generate{config} --trigger schedule
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
    try:
        minute, hour, day, month, dow = split_cron(schedule.cron or "")
        weekdays = weekday_names(dow)
    except ValueError as exc:
        raise ConfigError(f"schedule.cron: {schedule.cron!r}: {exc}") from None
    if day != "*" and dow != "*":
        raise ConfigError("schedule.cron: day-of-month and day-of-week both set "
                          "(cron ORs them, systemd ANDs them)",
                          hint="use the daemon, or restrict only one of them")
    days = "" if weekdays == "*" else _day_ranges(weekdays) + " "
    tz = f" {schedule.timezone}" if schedule.timezone else ""
    return (f"OnCalendar={days}*-{_cron_field(month, 'month')}-{_cron_field(day, 'day')} "
            f"{_cron_field(hour, 'hour')}:{_cron_field(minute, 'minute')}:00{tz}")


def _day_ranges(names: str) -> str:
    """"mon,tue,wed,sun" -> "Mon..Wed,Sun": systemd's way of writing a weekday list. Its week starts
    on Monday, so a range may not wrap past Sunday ("Sun..Tue" is refused)."""
    week = (*WEEKDAYS[1:7], WEEKDAYS[0])  # mon .. sun
    runs: list[list[int]] = []
    for day in sorted({week.index(n) for n in names.split(",")}):
        if runs and day == runs[-1][1] + 1:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return ",".join(week[a].capitalize() + ("" if a == b else ".." + week[b].capitalize()) for a, b in runs)


_NEEDS_QUOTES = re.compile(r"""[\s"'\\;\x00-\x1f\x7f]""")


def systemd_word(value: str, *, dollar: bool = True) -> str:
    """One word of an ExecStart= command line (dollar=True) or an Environment= list (dollar=False) that
    systemd reads back as exactly `value`."""
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        raise WallpaperError(f"{value!r} is not valid UTF-8, which systemd unit files must be",
                             hint="use a path made of UTF-8 names")
    text = value.replace("%", "%%")
    if dollar:
        text = text.replace("$", "$$")
    if value and not _NEEDS_QUOTES.search(value):
        return text
    escaped = "".join("\\" + ch if ch in '"\\' else f"\\x{ord(ch):02x}" if ord(ch) < 0x20 or ch == "\x7f"
                      else ch for ch in text)
    return f'"{escaped}"'


def quote_exec(argv: Sequence[str]) -> str:
    """argv as the text of an ExecStart= line that runs exactly argv (argv[0]: the program path)."""
    program = argv[0]
    bad = sorted({ch for ch in program if ch in "\"'\\" or ord(ch) < 0x20 or ch == "\x7f"})
    if bad:
        raise WallpaperError(
            f"systemd cannot run a program whose path contains {' '.join(repr(c) for c in bad)}: {program!r}",
            hint="install ai-wallpaper into a virtual environment (or link its interpreter) at a path "
                 "without quotes, backslashes or control characters, then run install-service with it")
    words = [systemd_word(a) for a in argv]
    if "$" in program:  # '@': the program path (never substituted), then argv[0] (substituted: '$$')
        words.insert(0, systemd_word("@" + program, dollar=False))
    return " ".join(words)


def environment_assignment(name: str, value: str) -> str:
    """An Environment= line setting `name` to exactly `value`."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise WallpaperError(f"not an environment variable name: {name!r}")
    return "Environment=" + systemd_word(f"{name}={value}", dollar=False)


def render_units(exec_start: str, schedule: ScheduleSettings, *, config_file: Path | None = None,
                 environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """The three unit files' text. exec_start: ExecStart= text that runs `ai-wallpaper` without a
    subcommand, already in systemd syntax (`quote_exec(argv)`, or the shipped `%h/...` path).
    config_file: passed as --config after the subcommand (see daemon.generate_command).
    environment: further variables the unit sets (install-service: the user's AI_WALLPAPER_* ones)."""
    head = ("# ai-wallpaper user unit. `ai-wallpaper install-service` writes it with this machine's\n"
            "# interpreter path into ~/.config/systemd/user/; every directive is explained above it.\n")
    config = f" --config {systemd_word(str(config_file))}" if config_file is not None else ""
    lines = [environment_assignment("PYTHONUNBUFFERED", "1")]
    if environment:
        lines.append("# The AI_WALLPAPER_* variables set where install-service ran, so the service sees the same\n"
                     "# folders and settings file as the shell it was installed from.")
        lines += [environment_assignment(name, value) for name, value in sorted(environment.items())]
    priority = _PRIORITY.format(environment="\n".join(lines))
    service = (head + _UNIT_HEAD.format(description="AI wallpaper daemon (scheduled SDXL wallpapers)")
               + _SERVICE_BODY.format(exec_start=exec_start, config=config, priority=priority))
    oneshot = (head + _UNIT_HEAD.format(description="AI wallpaper: one generation (ai-wallpaper.timer)")
               + _ONESHOT_BODY.format(exec_start=exec_start, config=config,
                                      timeout_min=schedule.run_timeout_minutes, priority=priority))
    units = {SERVICE: service, ONESHOT: oneshot}
    with contextlib.suppress(ConfigError):  # a cron line systemd cannot express: the daemon still runs it
        units[TIMER] = head + _TIMER.format(when=on_calendar(schedule), jitter=f"{schedule.jitter_seconds}s")
    return units


def check_calendar(timer_lines: str) -> None:
    """Refuse a timer whose OnCalendar= systemd itself rejects (asks `systemd-analyze calendar`)."""
    for line in timer_lines.splitlines():
        if not line.startswith("OnCalendar="):
            continue
        expression = line.removeprefix("OnCalendar=")
        binary = shutil.which("systemd-analyze")
        if binary is None:
            return  # nothing to ask; systemd reports a bad unit when it loads it
        try:
            result = subprocess.run([binary, "calendar", expression], capture_output=True, text=True,
                                    timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return
        if result.returncode != 0:
            why = (result.stderr.strip().splitlines() or ["rejected"])[-1]
            raise ConfigError(f"schedule.cron: systemd cannot use the timer expression {expression!r}: {why}",
                              hint="use the daemon (install-service without --timer), or simplify the cron line")


def user_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"
