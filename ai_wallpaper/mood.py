"""The mood of the moment: weather condition family, time of day, season, temperature and wind.

A mood always exists. With a weather report it carries the live (or stale) condition; without
one it is built from the clock and the calendar alone: time of day from sunrise/sunset computed
astronomically when the location is known, else from fixed clock hours; the season from the
date, flipped for the southern hemisphere. Everything is a plain dict so it goes into the plan,
run.json and the LoRA selector unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

# --- vocabulary (themes.yaml affinities are validated against these) -------------------------
CONDITIONS = ("clear", "cloudy", "overcast", "fog", "drizzle", "rain", "snow", "storm")
TIMES_OF_DAY = ("night", "dawn", "day", "golden_hour", "dusk")
SEASONS = ("spring", "summer", "autumn", "winter")
TEMPERATURE_BANDS = ("freezing", "cold", "mild", "warm", "hot")
WIND_BANDS = ("calm", "breezy", "windy", "gale")

# Mood words that theme templates may use as placeholders: {light}, {atmosphere}, {season}.
LIGHT_PHRASES = {
    "night": "moonlit night, deep shadows and a few glowing lights",
    "dawn": "soft pastel dawn light",
    "day": "bright natural daylight",
    "golden_hour": "warm golden-hour light with long shadows",
    "dusk": "deep blue-hour dusk",
}
ATMOSPHERE_PHRASES = {
    "clear": "crisp clear air",
    "cloudy": "scattered drifting clouds",
    "overcast": "soft diffused overcast sky",
    "fog": "drifting fog and layered mist",
    "drizzle": "fine misty drizzle",
    "rain": "falling rain and wet reflective surfaces",
    "snow": "gently falling snow",
    "storm": "dramatic storm clouds and distant lightning",
}
SEASON_ATMOSPHERE = {
    "spring": "fresh spring air",
    "summer": "warm summer haze",
    "autumn": "crisp autumn air",
    "winter": "still, cold winter air",
}
MOOD_PLACEHOLDERS = ("light", "atmosphere", "season")

_ADJECTIVE = {
    "clear": "clear", "cloudy": "cloudy", "overcast": "overcast", "fog": "foggy", "drizzle": "drizzly",
    "rain": "rainy", "snow": "snowy", "storm": "stormy",
}


def condition_family(wmo_code: int | None) -> str | None:
    """WMO weather interpretation code (Open-Meteo's `weather_code`) -> condition family."""
    if wmo_code is None:
        return None
    if wmo_code in (0, 1):
        return "clear"
    if wmo_code == 2:
        return "cloudy"
    if wmo_code == 3:
        return "overcast"
    if wmo_code in (45, 48):
        return "fog"
    if 51 <= wmo_code <= 57:
        return "drizzle"
    if 61 <= wmo_code <= 67 or 80 <= wmo_code <= 82:
        return "rain"
    if 71 <= wmo_code <= 77 or wmo_code in (85, 86):
        return "snow"
    if 95 <= wmo_code <= 99:
        return "storm"
    return None


def condition_from_text(text: str) -> str | None:
    """NWS `shortForecast` words -> condition family (first match in severity order)."""
    t = text.lower()
    ordered = (
        ("storm", ("thunder", "t-storm", "tstorm")),
        ("snow", ("snow", "sleet", "blizzard", "flurr", "ice pellets")),
        ("rain", ("rain", "shower")),
        ("drizzle", ("drizzle",)),
        ("fog", ("fog", "mist", "haze", "smoke")),
        ("overcast", ("overcast", "mostly cloudy")),
        ("cloudy", ("partly", "cloud")),
        ("clear", ("sunny", "clear", "fair")),
    )
    for family, words in ordered:
        if any(w in t for w in words):
            return family
    return None


def temperature_band(celsius: float | None) -> str | None:
    if celsius is None:
        return None
    if celsius < 0:
        return "freezing"
    if celsius < 10:
        return "cold"
    if celsius < 20:
        return "mild"
    if celsius < 28:
        return "warm"
    return "hot"


def wind_band(kmh: float | None) -> str | None:
    if kmh is None:
        return None
    if kmh < 12:
        return "calm"
    if kmh < 30:
        return "breezy"
    if kmh < 50:
        return "windy"
    return "gale"


def season_for(day: date, latitude: float | None) -> str:
    """Meteorological seasons (Dec-Feb winter in the north); the southern hemisphere is flipped."""
    north = ("winter", "winter", "spring", "spring", "spring", "summer",
             "summer", "summer", "autumn", "autumn", "autumn", "winter")[day.month - 1]
    if latitude is not None and latitude < 0:
        return {"winter": "summer", "summer": "winter", "spring": "autumn", "autumn": "spring"}[north]
    return north


# --- sunrise / sunset ------------------------------------------------------------------------


@dataclass(frozen=True)
class SunTimes:
    sunrise: datetime | None  # UTC; None in polar day or night
    sunset: datetime | None
    polar: str | None = None  # "day" (sun never sets) or "night" (never rises)


_J2000 = 2451545.0
_J2000_NOON = datetime(2000, 1, 1, 12, tzinfo=UTC)


def sun_times(latitude: float, longitude: float, day: date) -> SunTimes:
    """The sunrise equation (NOAA-style approximation, about a minute of error at mid latitudes)."""
    n = (day - date(2000, 1, 1)).days
    j_star = n - longitude / 360.0
    m = math.radians((357.5291 + 0.98560028 * j_star) % 360)
    c = 1.9148 * math.sin(m) + 0.0200 * math.sin(2 * m) + 0.0003 * math.sin(3 * m)
    lam = math.radians((math.degrees(m) + c + 180 + 102.9372) % 360)
    transit = _J2000 + j_star + 0.0053 * math.sin(m) - 0.0069 * math.sin(2 * lam)
    sin_dec = math.sin(lam) * math.sin(math.radians(23.4397))
    cos_dec = math.cos(math.asin(sin_dec))
    phi = math.radians(latitude)
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


def time_of_day_from_sun(now: datetime, sunrise: datetime, sunset: datetime) -> str:
    t = now.astimezone(UTC)
    if t < sunrise - timedelta(minutes=45):
        return "night"
    if t < sunrise + timedelta(minutes=45):
        return "dawn"
    if t < sunset - timedelta(minutes=60):
        return "day"
    if t < sunset + timedelta(minutes=15):
        return "golden_hour"
    if t < sunset + timedelta(minutes=50):
        return "dusk"
    return "night"


def time_of_day_from_clock(now: datetime) -> str:
    """Fixed hours on the wall clock of `now` (used when the location is unknown)."""
    hour = now.hour + now.minute / 60
    if 5 <= hour < 7:
        return "dawn"
    if 7 <= hour < 17:
        return "day"
    if 17 <= hour < 19:
        return "golden_hour"
    if 19 <= hour < 20:
        return "dusk"
    return "night"


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.astimezone()


def time_of_day(
    now: datetime,
    latitude: float | None,
    longitude: float | None,
    sunrise: datetime | None = None,
    sunset: datetime | None = None,
) -> tuple[str, str]:
    """(time of day, basis): basis is 'weather' (report's sun times), 'astronomical' or 'clock'."""
    now = _aware(now)
    if sunrise is not None and sunset is not None:
        return time_of_day_from_sun(now, sunrise, sunset), "weather"
    if latitude is not None and longitude is not None:
        sun = sun_times(latitude, longitude, solar_date(now, longitude))
        if sun.polar is not None:
            return ("day" if sun.polar == "day" else "night"), "astronomical"
        assert sun.sunrise is not None and sun.sunset is not None
        return time_of_day_from_sun(now, sun.sunrise, sun.sunset), "astronomical"
    return time_of_day_from_clock(now), "clock"


# --- the mood ---------------------------------------------------------------------------------


def build_mood(
    now: datetime,
    *,
    latitude: float | None = None,
    longitude: float | None = None,
    place: str | None = None,
    weather: dict[str, Any] | None = None,
    source: str = "absent",
) -> dict[str, Any]:
    """Combine a weather observation (or none) with time and season.

    `weather` keys (all optional): weather_code, condition, temperature_c, wind_kmh, sunrise,
    sunset (ISO strings or datetimes, UTC), observed_at.
    """
    now = _aware(now)
    w = weather or {}
    sunrise, sunset = _parse_dt(w.get("sunrise")), _parse_dt(w.get("sunset"))
    if sunrise is not None and abs((now - sunrise).total_seconds()) > 20 * 3600:
        sunrise = sunset = None  # a stale report's sun times belong to another day
    tod, basis = time_of_day(now, latitude, longitude, sunrise, sunset)
    day = solar_date(now, longitude) if longitude is not None else now.date()
    condition = w.get("condition") or condition_family(w.get("weather_code"))
    temp = w.get("temperature_c")
    wind = w.get("wind_kmh")
    mood: dict[str, Any] = {
        "condition": condition if condition in CONDITIONS else None,
        "time_of_day": tod,
        "season": season_for(day, latitude),
        "temperature_band": temperature_band(temp),
        "temperature_c": temp,
        "wind": wind_band(wind),
        "wind_kmh": wind,
        "weather_code": w.get("weather_code"),
        "source": source,
        "observed_at": w.get("observed_at"),
        "time_basis": basis,
        "hemisphere": "unknown" if latitude is None else ("south" if latitude < 0 else "north"),
        "location": place or _coords(latitude, longitude),
    }
    mood["description"] = describe(mood)
    return mood


def _coords(latitude: float | None, longitude: float | None) -> str | None:
    return f"{latitude:.3f},{longitude:.3f}" if latitude is not None and longitude is not None else None


def describe(mood: dict[str, Any]) -> str:
    """'a foggy, cold autumn dawn' - short words for logs, the plan and run.json."""
    words = [_ADJECTIVE[c] for c in [mood.get("condition")] if c in _ADJECTIVE]
    if mood.get("temperature_band"):
        words.append(mood["temperature_band"])
    if mood.get("wind") in ("windy", "gale"):
        words.append(mood["wind"])
    head = ", ".join(words)
    tod = str(mood.get("time_of_day", "day")).replace("_", " ")
    text = f"{head} {mood.get('season', '')} {tod}".strip()
    return ("an " if text[:1] in "aeiou" else "a ") + " ".join(text.split())


def mood_phrases(mood: dict[str, Any] | None) -> dict[str, str]:
    """Values for the {light}, {atmosphere} and {season} template placeholders."""
    mood = mood or {}
    tod = mood.get("time_of_day", "day")
    season = mood.get("season", "summer")
    condition = mood.get("condition")
    atmosphere = ATMOSPHERE_PHRASES.get(condition or "", SEASON_ATMOSPHERE.get(season, "clear air"))
    return {"light": LIGHT_PHRASES.get(tod, LIGHT_PHRASES["day"]), "atmosphere": atmosphere, "season": season}


def _parse_dt(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
