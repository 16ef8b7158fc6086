"""`ai-wallpaper pause [DURATION]` and `resume`: the pause file, and what it says now.

One small JSON file (`Paths.pause_file`, written atomically): `{"version": 1, "since": ISO time,
"until": ISO time or null}`; null means until `resume`. While a pause is active, a scheduled or
catch-up run is recorded "skipped" (service/conditions.py); a run the user asks for (`generate`,
`next`) still runs. An expired pause needs no clean-up: readers ignore it.

A pause file that cannot be read (not a regular file, too large, not this JSON, a time without a
zone, a pause longer than MAX_PAUSE) counts as not paused, with a warning: a damaged file neither
stops the schedule nor raises. `pause` overwrites it and `resume` removes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ai_wallpaper.core import atomic, log
from ai_wallpaper.core.errors import WallpaperError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.core.untrusted_input import read_small_json

logger = log.get(__name__)
MAX_PAUSE = timedelta(days=365)
FORMAT_VERSION = 1
_MAX_FILE_BYTES = 4096
# "1d", "2h", "30m", "90s" and their combinations in this order ("1h30m"); six digits at most each.
_DURATION = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,6})s)?")


def parse_duration(text: str) -> timedelta:
    """A pause length such as 30m, 2h, 1d or 1h30m; ValueError saying what is wrong."""
    word = text.strip().lower()
    match = _DURATION.fullmatch(word) if word else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 30m, 2h, 1d or 1h30m")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError(f"{text!r}: a pause must last longer than 0 s")
    if value > MAX_PAUSE:
        raise ValueError(f"{text!r} is longer than {MAX_PAUSE.days} days; "
                         "leave the duration out to pause until `ai-wallpaper resume`")
    return value


@dataclass(frozen=True)
class PauseState:
    """A pause as the file records it; `until` None: until `ai-wallpaper resume`."""

    since: datetime
    until: datetime | None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        """"paused until 2026-12-07 18:00 CET" or "paused until `ai-wallpaper resume`"."""
        if self.until is None:
            return "paused until `ai-wallpaper resume`"
        return f"paused until {self.until.astimezone():%Y-%m-%d %H:%M %Z}".rstrip()


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _time(value: object, key: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"{key!r} is not a time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{key!r} has no time zone")
    return moment


def load_pause(path: Path) -> tuple[PauseState | None, str | None]:
    """(the recorded pause, active or not; None if there is none or it is unreadable, why it is)."""
    try:
        record = read_small_json(path, _MAX_FILE_BYTES)
        if record is None:
            return None, None
        if not isinstance(record, dict) or record.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a version-{FORMAT_VERSION} pause record")
        since = _time(record.get("since"), "since")
        until = None if record.get("until") is None else _time(record.get("until"), "until")
        if until is not None and not timedelta(0) < until - since <= MAX_PAUSE:
            raise ValueError(f"'until' is not within {MAX_PAUSE.days} days after 'since'")
        return PauseState(since, until), None
    except (OSError, ValueError, OverflowError) as exc:  # UnicodeDecodeError and JSON errors are ValueErrors
        problem = f"{path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
        return None, problem


def active_pause(path: Path, now: datetime | None = None) -> PauseState | None:
    """The pause in force at `now` (default: now), or None. An unreadable file is logged, not raised."""
    state, problem = load_pause(path)
    if problem:
        logger.warning("the pause file is unreadable; not paused", problem=problem,
                       hint="`ai-wallpaper pause` or `ai-wallpaper resume` replaces it")
    return state if state is not None and state.active(_now(now)) else None


def describe_pause(paths: Paths, now: datetime | None = None) -> str | None:
    """One line for `ai-wallpaper status`: the pause in force, a pause file that cannot be read, or
    None when scheduled runs go ahead."""
    state, problem = load_pause(paths.pause_file)
    if problem:
        return f"not paused: the pause file is unreadable ({problem}); `ai-wallpaper resume` removes it"
    if state is None or not state.active(_now(now)):
        return None
    return state.describe() + " (scheduled runs are skipped)"


def pause(path: Path, duration: timedelta | None, now: datetime | None = None) -> PauseState:
    """Pause scheduled runs for `duration` (None: until `resume`), replacing any earlier pause."""
    since = _now(now)
    state = PauseState(since, None if duration is None else since + duration)
    record = {"version": FORMAT_VERSION, "since": since.isoformat(),
              "until": None if state.until is None else state.until.isoformat()}
    try:
        atomic.write_json(path, record)
    except OSError as exc:
        raise WallpaperError(f"could not write the pause file {path}: {exc.strerror or exc}",
                             hint="check that the state folder is yours and writable") from None
    logger.debug("paused", until=record["until"])
    return state


def resume(path: Path, now: datetime | None = None) -> PauseState | None:
    """End the pause: remove the file. Returns the pause that was in force, or None if there was none."""
    state, problem = load_pause(path)
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise WallpaperError(f"could not remove the pause file {path}: {exc.strerror or exc}",
                             hint="remove it by hand; scheduled runs treat an unreadable file as not paused"
                             ) from None
    if problem:
        logger.warning("removed an unreadable pause file", problem=problem)
    return state if state is not None and state.active(_now(now)) else None
