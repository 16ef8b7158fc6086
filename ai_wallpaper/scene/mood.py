"""The mood of the moment: weather condition family, time of day, season, temperature and wind.

A mood always exists. With a weather report it carries the live (or stale) condition; without
one it is built from the clock and the calendar alone: time of day from sunrise/sunset computed
astronomically when the location is known, else from fixed clock hours; the season from the
date, flipped for the southern hemisphere. Everything is a plain dict so it goes into the plan,
run.json and the LoRA selector unchanged.

Values that cannot be real (NaN, infinities, -100 °C, negative wind, a code that is no WMO code,
a sunset before the sunrise, coordinates off the globe) are "no data" here, never a mood, whatever
the caller passes. In polar day or night (no sunrise or sunset) the time of day is day or night:
the provider's live is_day when it has one, else the sun's own polar state.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from ai_wallpaper.config.vocabulary import CONDITIONS
from ai_wallpaper.scene.sun import solar_date, sun_times, valid_coordinates

# Phrases for the placeholders of config/vocabulary.py MOOD_PLACEHOLDERS.
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
# What the Earth's surface has ever measured, with margin: outside it a value is an error, not weather.
TEMPERATURE_LIMITS_C = (-90.0, 60.0)
WIND_LIMITS_KMH = (0.0, 500.0)
# The WMO 4677 codes Open-Meteo reports, by condition family; any other code is unknown.
WMO_FAMILIES: dict[int, str] = {
    0: "clear", 1: "clear", 2: "cloudy", 3: "overcast", 45: "fog", 48: "fog",
    **dict.fromkeys((51, 53, 55, 56, 57), "drizzle"),
    **dict.fromkeys((61, 63, 65, 66, 67, 80, 81, 82), "rain"),
    **dict.fromkeys((71, 73, 75, 77, 85, 86), "snow"),
    **dict.fromkeys((95, 96, 99), "storm"),
}

_ADJECTIVE = {
    "clear": "clear", "cloudy": "cloudy", "overcast": "overcast", "fog": "foggy", "drizzle": "drizzly",
    "rain": "rainy", "snow": "snowy", "storm": "stormy",
}


def wmo_code(value: Any) -> int | None:
    """`value` as a known WMO weather code (45 or 45.0), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:  # NaN != NaN
        return None
    return int(value) if value in WMO_FAMILIES else None


def condition_family(code: Any) -> str | None:
    """WMO weather interpretation code (Open-Meteo's `weather_code`) -> condition family."""
    known = wmo_code(code)
    return None if known is None else WMO_FAMILIES[known]


def plausible(value: Any, limits: tuple[float, float]) -> float | None:
    """A finite number within `limits` as a float, else None (no data); NaN fails both comparisons."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not limits[0] <= value <= limits[1]:
        return None
    return float(value)


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
    if plausible(celsius, TEMPERATURE_LIMITS_C) is None:
        return None
    assert celsius is not None
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
    if plausible(kmh, WIND_LIMITS_KMH) is None:
        return None
    assert kmh is not None
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


# --- time of day ------------------------------------------------------------------------------


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
    is_day: bool | None = None,
) -> tuple[str, str]:
    """(time of day, basis): basis is 'weather' (the report's sun times, or its is_day in polar
    day or night), 'astronomical' or 'clock'. Sun times out of order and coordinates off the
    globe are ignored."""
    now = _aware(now)
    if sunrise is not None and sunset is not None and sunrise < sunset:
        return time_of_day_from_sun(now, sunrise, sunset), "weather"
    if valid_coordinates(latitude, longitude):
        assert latitude is not None and longitude is not None
        sun = sun_times(latitude, longitude, solar_date(now, longitude))
        if sun.sunrise is not None and sun.sunset is not None:
            return time_of_day_from_sun(now, sun.sunrise, sun.sunset), "astronomical"
        if is_day is not None:  # polar day or night: what the provider sees wins
            return ("day" if is_day else "night"), "weather"
        return ("day" if sun.polar == "day" else "night"), "astronomical"
    if is_day is not None:
        return ("day" if is_day else "night"), "weather"
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
    w = weather if isinstance(weather, dict) else {}
    if not valid_coordinates(latitude, longitude):
        latitude = longitude = None
    sunrise, sunset = _parse_dt(w.get("sunrise")), _parse_dt(w.get("sunset"))
    if sunrise is None or sunset is None or not timedelta(0) < sunset - sunrise <= timedelta(hours=24) \
            or abs((now - sunrise).total_seconds()) > 20 * 3600:
        sunrise = sunset = None  # missing (polar), out of order, or a stale report's other day
    is_day = w.get("is_day") if isinstance(w.get("is_day"), bool) and source == "live" else None
    tod, basis = time_of_day(now, latitude, longitude, sunrise, sunset, is_day)
    day = solar_date(now, longitude) if longitude is not None else now.date()
    code = wmo_code(w.get("weather_code"))
    condition = w.get("condition") or condition_family(code)
    temp = plausible(w.get("temperature_c"), TEMPERATURE_LIMITS_C)
    wind = plausible(w.get("wind_kmh"), WIND_LIMITS_KMH)
    observed = w.get("observed_at")
    mood: dict[str, Any] = {
        "condition": condition if isinstance(condition, str) and condition in CONDITIONS else None,
        "time_of_day": tod,
        "season": season_for(day, latitude),
        "temperature_band": temperature_band(temp),
        "temperature_c": temp,
        "wind": wind_band(wind),
        "wind_kmh": wind,
        "weather_code": code,
        "source": source,
        "observed_at": observed if isinstance(observed, str) else None,
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
