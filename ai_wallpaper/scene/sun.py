"""Where the sun is: sunrise and sunset from the sunrise equation, and polar day and night.

No network and no tables: NOAA's approximation, about a minute of error at mid latitudes. Above
the polar circles the sun may not rise or set at all on a day; `sun_times` then says which
("day": it never sets, "night": it never rises) instead of failing on acos() of a value past 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class SunTimes:
    sunrise: datetime | None  # UTC; None in polar day or night
    sunset: datetime | None
    polar: str | None = None  # "day" (sun never sets) or "night" (never rises)


_J2000 = 2451545.0
_J2000_NOON = datetime(2000, 1, 1, 12, tzinfo=UTC)


def valid_coordinates(latitude: Any, longitude: Any) -> bool:
    """Finite numbers within -90..90 and -180..180 (a NaN would poison every sun computation)."""
    def within(value: Any, limit: float) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and -limit <= value <= limit

    return within(latitude, 90) and within(longitude, 180)


def sun_times(latitude: float, longitude: float, day: date) -> SunTimes:
    """The sunrise equation for `day` at a place; ValueError for coordinates that are no place."""
    if not valid_coordinates(latitude, longitude):
        raise ValueError(f"not a place on Earth: latitude {latitude!r}, longitude {longitude!r}")
    n = (day - date(2000, 1, 1)).days
    j_star = n - longitude / 360.0
    m = math.radians((357.5291 + 0.98560028 * j_star) % 360)
    c = 1.9148 * math.sin(m) + 0.0200 * math.sin(2 * m) + 0.0003 * math.sin(3 * m)
    lam = math.radians((math.degrees(m) + c + 180 + 102.9372) % 360)
    transit = _J2000 + j_star + 0.0053 * math.sin(m) - 0.0069 * math.sin(2 * lam)
    sin_dec = math.sin(lam) * math.sin(math.radians(23.4397))
    cos_dec = math.cos(math.asin(sin_dec))
    phi = math.radians(latitude)
    # cos(phi) is never exactly 0 in floating point, even at the poles: past the polar circles the
    # quotient leaves [-1, 1] and the day is polar.
    cos_w0 = (math.sin(math.radians(-0.833)) - math.sin(phi) * sin_dec) / (math.cos(phi) * cos_dec)
    if cos_w0 < -1:
        return SunTimes(None, None, "day")
    if cos_w0 > 1:
        return SunTimes(None, None, "night")
    w0 = math.degrees(math.acos(cos_w0))

    def to_dt(jd: float) -> datetime:
        return _J2000_NOON + timedelta(days=jd - _J2000)

    return SunTimes(to_dt(transit - w0 / 360), to_dt(transit + w0 / 360))


def solar_date(now: datetime, longitude: float) -> date:
    """The local calendar day by the sun, so a UTC date never splits a local evening."""
    return (now.astimezone(UTC) + timedelta(hours=longitude / 15.0)).date()
