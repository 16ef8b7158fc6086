"""Provider answers -> weather reports, and the sanity rules every report passes, fresh or cached.

A report is a plain dict (`REPORT_KEYS`) that goes into the cache, the mood and the plan. What a
provider sends that cannot be real - NaN or infinities (Python's JSON parser accepts both), a
temperature outside -90..60 °C, wind below 0 or above 500 km/h, an is_day that is not true/false,
sun times that do not parse or a sunset before the sunrise, a UTC offset beyond ±18 h - becomes
None ("no data") with a warning. A weather code that is not one of the WMO codes Open-Meteo
reports rejects the whole report (`BadReport`): it is what the condition is made of. No sunrise or
sunset at all (polar day or night: Open-Meteo sends null, or equal times) is not a problem: the sun
times are None and the mood uses is_day or the sun's polar state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ai_wallpaper.config.problems import show
from ai_wallpaper.core import log
from ai_wallpaper.scene.mood import (
    CONDITIONS,
    TEMPERATURE_LIMITS_C,
    WIND_LIMITS_KMH,
    condition_family,
    condition_from_text,
    plausible,
    wmo_code,
)

logger = log.get(__name__)
REPORT_KEYS = ("provider", "weather_code", "condition", "temperature_c", "wind_kmh", "is_day", "sunrise",
               "sunset", "observed_at", "text")
MAX_UTC_OFFSET = timedelta(hours=18)


class BadReport(ValueError):
    """The report cannot be used at all (its weather code is no WMO code, or it is no report)."""


# --- parsing -------------------------------------------------------------------------------------


def open_meteo_report(data: Any, now: datetime, notes: list[str]) -> dict[str, Any]:
    """The raw report of an Open-Meteo answer (KeyError/TypeError/ValueError for a wrong shape);
    `sanitize` then decides what of it is usable."""
    current = data["current"]
    if not isinstance(current, dict) or "weather_code" not in current:
        raise KeyError("current.weather_code")
    sunrise = sunset = None
    offset = _offset(data.get("utc_offset_seconds", 0), notes)
    daily = data.get("daily")
    if offset is not None and isinstance(daily, dict) and isinstance(daily.get("time"), list) and daily["time"]:
        local_today = (now + offset).date().isoformat()
        i = daily["time"].index(local_today) if local_today in daily["time"] else 0
        sunrise, sunset = _local_to_utc(daily, "sunrise", i, offset), _local_to_utc(daily, "sunset", i, offset)
    observed = current.get("time")
    return {
        "provider": "open-meteo",
        "weather_code": current["weather_code"],
        "condition": None,  # from the code, by sanitize
        "temperature_c": current.get("temperature_2m"),
        "wind_kmh": current.get("wind_speed_10m"),
        "is_day": current.get("is_day"),
        "sunrise": sunrise,
        "sunset": sunset,
        "observed_at": str(observed) if observed else now.isoformat(timespec="minutes"),
        "text": None,
    }


def nws_report(period: Any, now: datetime) -> dict[str, Any]:
    """The raw report of the first NWS forecastHourly period (KeyError/TypeError for a wrong shape)."""
    temp = period["temperature"]
    if isinstance(temp, int | float) and not isinstance(temp, bool) \
            and str(period.get("temperatureUnit", "F")).upper() == "F" and abs(temp) < 1e6:
        temp = round((temp - 32) * 5 / 9, 1)
    wind_text = str(period.get("windSpeed") or "")
    mph = [float(w) for w in wind_text.replace("to", " ").split() if w.replace(".", "", 1).isdigit()]
    text = str(period["shortForecast"])
    return {
        "provider": "nws",
        "weather_code": None,
        "condition": condition_from_text(text),
        "temperature_c": temp,
        "wind_kmh": round(max(mph) * 1.609, 1) if mph else None,
        "is_day": period.get("isDaytime"),
        "sunrise": None,
        "sunset": None,
        "observed_at": str(period.get("startTime") or now.isoformat(timespec="minutes")),
        "text": text,
    }


def _offset(value: Any, notes: list[str]) -> timedelta | None:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not -MAX_UTC_OFFSET.total_seconds() <= value <= MAX_UTC_OFFSET.total_seconds():
        # Without the offset the local sun times cannot be placed: no sun times.
        notes.append(f"weather: UTC offset {show(value)} s is not a time zone; sun times ignored")
        return None
    return timedelta(seconds=int(value))


def _local_to_utc(daily: dict[str, Any], key: str, i: int, offset: timedelta) -> Any:
    """daily[key][i] (local time, no zone) as a UTC ISO string; the raw value if it does not parse."""
    values = daily.get(key)
    value = values[i] if isinstance(values, list) and i < len(values) else None
    if not isinstance(value, str):
        return value  # None (polar day or night) or garbage: sanitize says which
    try:
        return (datetime.fromisoformat(value) - offset).replace(tzinfo=UTC).isoformat()
    except (TypeError, ValueError, OverflowError):
        return value  # None (polar day or night) or garbage: sanitize says which


# --- sanity ----------------------------------------------------------------------------------------


def sanitize(report: Any) -> tuple[dict[str, Any], list[str]]:
    """The report with every impossible value set to None, and a warning for each; BadReport if
    the report as a whole is unusable. Applied to fresh and cached reports alike."""
    if not isinstance(report, dict):
        raise BadReport(f"not a report: {show(report)}")
    out: dict[str, Any] = {key: report.get(key) for key in REPORT_KEYS}
    notes: list[str] = []
    if out["provider"] == "nws" and out["weather_code"] is None:
        if out["condition"] is not None and out["condition"] not in CONDITIONS:
            notes.append(f"weather: unknown condition {show(out['condition'])} ignored")
            out["condition"] = None
    else:
        code = wmo_code(out["weather_code"])
        if code is None:
            raise BadReport(f"weather code {show(out['weather_code'])} is not a WMO weather code")
        out["weather_code"], out["condition"] = code, condition_family(code)
    out["temperature_c"] = _number(out["temperature_c"], TEMPERATURE_LIMITS_C, "temperature", "°C", notes)
    out["wind_kmh"] = _number(out["wind_kmh"], WIND_LIMITS_KMH, "wind speed", "km/h", notes)
    is_day = out["is_day"]
    if isinstance(is_day, int) and not isinstance(is_day, bool) and is_day in (0, 1):
        out["is_day"] = bool(is_day)
    elif is_day is not None and not isinstance(is_day, bool):
        notes.append(f"weather: is_day {show(is_day)} is neither day nor night; ignored")
        out["is_day"] = None
    out["sunrise"], out["sunset"] = _sun_times(out["sunrise"], out["sunset"], notes)
    for key in ("observed_at", "text"):
        if out[key] is not None and not isinstance(out[key], str):
            out[key] = None
    for note in notes:
        logger.warning("weather.implausible", provider=out["provider"], note=note)
    return out, notes


def _number(value: Any, limits: tuple[float, float], what: str, unit: str, notes: list[str]) -> float | None:
    if value is None:
        return None
    number = plausible(value, limits)
    if number is None:
        notes.append(f"weather: {what} {show(value)} {unit} is not a possible value "
                     f"(outside {limits[0]:g}..{limits[1]:g}); ignored")
    return number


def _sun_times(sunrise: Any, sunset: Any, notes: list[str]) -> tuple[str | None, str | None]:
    if sunrise is None and sunset is None:
        return None, None  # polar day or night (or NWS, which sends none)
    try:
        rise, fall = datetime.fromisoformat(sunrise), datetime.fromisoformat(sunset)
        span = fall - rise
    except (TypeError, ValueError):
        if sunrise is None or sunset is None:
            return None, None  # one of them missing: a polar edge day
        notes.append(f"weather: sun times {show(sunrise)} / {show(sunset)} do not parse; ignored")
        return None, None
    if span == timedelta(0):
        return None, None  # equal times: Open-Meteo's polar day or night
    if not timedelta(0) < span <= timedelta(hours=24):
        notes.append(f"weather: sunset {sunset} is not within a day after sunrise {sunrise}; ignored")
        return None, None
    return sunrise, sunset
