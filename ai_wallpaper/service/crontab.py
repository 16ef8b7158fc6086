"""schedule.cron, read once for both schedulers: the daemon (APScheduler) and the systemd timer.

Crontab counts weekdays 0-7 with 0 and 7 = Sunday; APScheduler 3 counts 0 as *Monday* and systemd
wants names, so a numeric weekday field is turned into names here and nowhere else.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# index = crontab weekday number
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TOKEN = re.compile(r"(\*|\d+|[a-z]{3})(?:-(\d+|[a-z]{3}))?(?:/(\d+))?")


class CronFields(NamedTuple):
    minute: str
    hour: str
    day: str
    month: str
    weekday: str


def split_cron(line: str) -> CronFields:
    """The five fields of a crontab line; ValueError when there are not five."""
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (min hour day month weekday), got {len(fields)}")
    return CronFields(*fields)


def weekday_names(field: str) -> str:
    """A crontab weekday field with every day written as a name ("1-5" -> "mon,tue,wed,thu,fri");
    `*` stays `*`. ValueError for a day that is not one."""
    if field == "*":
        return field
    days: list[str] = []
    for token in field.lower().split(","):
        m = _TOKEN.fullmatch(token)
        if not m:
            raise ValueError(f"bad day of week {token!r}")
        lo = 0 if m.group(1) == "*" else _day_number(m.group(1))
        hi = 6 if m.group(1) == "*" else _day_number(m.group(2) or m.group(1))
        if lo > hi:
            raise ValueError(f"bad day of week {token!r}: the range runs backwards")
        days.extend(WEEKDAYS[d] for d in range(lo, hi + 1, int(m.group(3) or 1)))
    return ",".join(dict.fromkeys(days))


def _day_number(word: str) -> int:
    if word.isdigit():
        if int(word) > 7:
            raise ValueError(f"bad day of week {word!r}: crontab days are 0-7 (0 and 7 = Sunday)")
        return int(word)
    if word not in WEEKDAYS:
        raise ValueError(f"bad day of week {word!r}: use 0-7 or sun, mon, tue, wed, thu, fri, sat")
    return WEEKDAYS.index(word)
