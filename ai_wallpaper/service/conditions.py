"""Whether a scheduled run should be skipped: the pause, then each `schedule.skip_when` condition.

The generation child checks these itself (`generate --trigger schedule|catch-up`, whoever started it:
the daemon or the systemd timer), before it plans or loads anything, and records a skip as a
"skipped" history row with the reason (not systemd `Condition*=`, which would leave no trace). A run
the user asks for (`generate`, `next`) always runs.

Each check returns the reason to skip or None. A check that cannot tell (tool missing, no display, no
session bus, output it does not understand) never skips: it logs why and the run goes on. Every
input is injectable (`Probes`): the command runner, the environment, the battery reading, our pids.

- battery: psutil.sensors_battery(); no battery or an unknown plug state never skips.
- screen locked: logind's LockedHint of the session (XDG_SESSION_ID, else the user's graphical
  session, `loginctl show-user`), then the freedesktop and GNOME ScreenSaver GetActive over D-Bus
  (gdbus): lockers that do not tell logind (KDE's and GNOME's screensavers do both) are still seen.
- fullscreen: sway (swaymsg -t get_tree), Hyprland (hyprctl activewindow -j), else X11 (xprop: the
  root's _NET_ACTIVE_WINDOW, then its _NET_WM_STATE). Other Wayland desktops have no common way to ask.
- GPU busy: nvidia-smi's compute processes other than ours, summed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ai_wallpaper.config.settings import SkipWhenSettings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import DesktopError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.desktop.runner import CommandResult, run_command
from ai_wallpaper.service.fullscreen import fullscreen_window
from ai_wallpaper.service.pause import active_pause

logger = log.get(__name__)
# The triggers a pause or a condition can skip: the clock's. `manual` and `next` are the user asking.
SKIPPABLE_TRIGGERS = ("schedule", "catch-up")
PROBE_TIMEOUT_S = 5.0
Run = Callable[[Sequence[str]], CommandResult]


def run_probe(argv: Sequence[str]) -> CommandResult:
    """Run a read-only probe; a missing tool is exit 127, a hung one exit 124 (never raised)."""
    try:
        return run_command(argv, check=False, timeout_s=PROBE_TIMEOUT_S)
    except (DesktopError, OSError) as exc:
        return CommandResult(tuple(argv), 124, "", str(exc))


def _battery() -> Any:
    import psutil

    return psutil.sensors_battery()


@dataclass(frozen=True)
class Probes:
    run: Run = run_probe
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    battery: Callable[[], Any] = _battery
    own_pids: frozenset[int] = field(default_factory=lambda: frozenset({os.getpid()}))


def _undetermined(check: str, why: str) -> None:
    logger.info("skip condition could not be checked; not skipping", check=check, why=why)


def pause_reason(paths: Paths, now: datetime | None = None) -> str | None:
    state = active_pause(paths.pause_file, now)
    return state.describe() if state is not None else None


def condition_reason(when: SkipWhenSettings, probes: Probes | None = None) -> str | None:
    """The first `skip_when` condition that holds, as a reason; None: run."""
    probes = probes or Probes()
    checks: list[Callable[[], str | None]] = []
    if when.on_battery:
        checks.append(lambda: on_battery(probes.battery))
    if when.screen_locked:
        checks.append(lambda: screen_locked(probes.run, probes.env))
    if when.fullscreen:
        checks.append(lambda: fullscreen(probes.run, probes.env))
    if when.gpu_busy_gb is not None:
        limit = when.gpu_busy_gb
        checks.append(lambda: gpu_busy(probes.run, limit, probes.own_pids))
    for check in checks:
        if reason := check():
            return reason
    return None


# --- battery ----------------------------------------------------------------------------------------
def on_battery(read: Callable[[], Any]) -> str | None:
    try:
        battery = read()
    except Exception as exc:  # psutil raises whatever the platform's sensors do
        _undetermined("on_battery", f"psutil.sensors_battery() failed: {exc!r}")
        return None
    if battery is None:
        logger.debug("no battery: on mains power")
        return None
    plugged = getattr(battery, "power_plugged", None)
    if plugged is None:
        _undetermined("on_battery", "the battery does not say whether the charger is plugged in")
        return None
    if plugged:
        return None
    percent = getattr(battery, "percent", None)
    if isinstance(percent, int | float) and 0 <= percent <= 100:
        return f"on battery ({percent:.0f}%)"
    return "on battery"


# --- screen locked ----------------------------------------------------------------------------------
_SESSION_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SCREENSAVERS = (("org.freedesktop.ScreenSaver", "/org/freedesktop/ScreenSaver"),
                 ("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver"))


def _logind_locked(run: Run, env: Mapping[str, str]) -> bool | None:
    session = env.get("XDG_SESSION_ID", "")
    if not _SESSION_ID.fullmatch(session):  # a user service has none: the user's graphical session
        getuid = getattr(os, "getuid", None)  # not on Windows, which has no logind either
        if getuid is None:
            return None
        found = run(["loginctl", "show-user", str(getuid()), "-p", "Display", "--value"])
        session = found.stdout.strip() if found.returncode == 0 else ""
        if not _SESSION_ID.fullmatch(session):
            return None
    answer = run(["loginctl", "show-session", session, "-p", "LockedHint", "--value"])
    value = answer.stdout.strip() if answer.returncode == 0 else ""
    return {"yes": True, "no": False}.get(value)


def _screensaver_active(run: Run, name: str, path: str) -> bool | None:
    answer = run(["gdbus", "call", "--session", "--dest", name, "--object-path", path,
                  "--method", f"{name}.GetActive"])
    value = answer.stdout.strip() if answer.returncode == 0 else ""
    return {"(true,)": True, "(false,)": False}.get(value)


def screen_locked(run: Run, env: Mapping[str, str]) -> str | None:
    answers = [_logind_locked(run, env)]
    if answers[0]:
        return "the screen is locked"
    for name, path in _SCREENSAVERS:
        answers.append(_screensaver_active(run, name, path))
        if answers[-1]:
            return "the screen is locked"
    if all(a is None for a in answers):
        _undetermined("screen_locked", "neither logind nor a ScreenSaver D-Bus service answered")
    return None


# --- fullscreen -------------------------------------------------------------------------------------
def fullscreen(run: Run, env: Mapping[str, str]) -> str | None:
    verdict, detail = fullscreen_window(run, env)
    if verdict is None:
        _undetermined("fullscreen", detail)
        return None
    if not verdict:
        return None
    return "a fullscreen window is active" + (f" ({detail})" if detail else "")


# --- GPU --------------------------------------------------------------------------------------------
_GPU_APP = re.compile(r"\s*(\d{1,10})\s*,\s*(\d{1,10})\s*")  # "12345, 4096" (MiB), one compute process


def gpu_busy(run: Run, limit_gb: float, own_pids: frozenset[int]) -> str | None:
    answer = run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    if answer.returncode != 0:
        _undetermined("gpu_busy_gb", f"nvidia-smi exited {answer.returncode}: {answer.stderr.strip()[:200]}")
        return None
    used_mib = 0
    lines = [line for line in answer.stdout.splitlines() if line.strip()]
    understood = 0
    for line in lines:
        match = _GPU_APP.fullmatch(line)
        if match is None:  # "[N/A]" memory (some drivers, MIG), a warning line, garbage
            continue
        understood += 1
        if int(match.group(1)) not in own_pids:
            used_mib += int(match.group(2))
    if lines and not understood:
        _undetermined("gpu_busy_gb", f"nvidia-smi's output is not understood: {lines[0][:120]!r}")
        return None
    used_gb = used_mib / 1024
    if used_gb > limit_gb:
        return f"the GPU is busy: other processes hold {used_gb:.1f} GB (schedule.skip_when.gpu_busy_gb: {limit_gb:g})"
    logger.debug("GPU not busy", other_processes_gb=round(used_gb, 2), limit_gb=limit_gb)
    return None
