"""Current weather for the mood: Open-Meteo (default, no key) or NWS, cached, never fatal.

- One fetch (geocoding + forecast, or NWS points + hourly forecast) runs under one wall-clock
  deadline (`deadline_seconds`), https only, without redirects and with a size cap (see
  weather_http), so a slow or hostile server cannot stall a run. NWS's follow-up URL must stay on
  the configured NWS host.
- Coordinates leave the machine (and name the cache files) rounded by `coarse()` to 2 decimals,
  about 1 km; Open-Meteo's grid is coarser anyway.
- A report younger than `cache_minutes` is reused without asking the network ("live").
- On any failure a cached report up to `stale_hours` old is used and marked "stale"; beyond that
  the result is "absent" and the mood comes from time and season only. A 429's Retry-After is
  remembered so the next runs do not hammer the service.
- A place name is resolved once (Open-Meteo geocoding) and the coordinates cached for good.
- Every report, fresh or cached, passes `weather_report.sanitize`: NaN, infinities and impossible
  values are dropped with a warning, an unknown weather code rejects the report.
Nothing here raises: every problem becomes a warning on the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ai_wallpaper.config.settings import WeatherSettings
from ai_wallpaper.core import atomic, log
from ai_wallpaper.core.untrusted_input import loads_json
from ai_wallpaper.scene.plan import WeatherStatus
from ai_wallpaper.scene.sun import valid_coordinates
from ai_wallpaper.scene.weather_http import Deadline, WeatherFailure, get_json, origin
from ai_wallpaper.scene.weather_report import BadReport, nws_report, open_meteo_report, sanitize

logger = log.get(__name__)


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None


@dataclass(frozen=True)
class WeatherResult:
    status: WeatherStatus
    report: dict[str, Any] | None  # see weather_report.REPORT_KEYS
    location: Location | None
    warnings: tuple[str, ...] = ()


# --- public entry -----------------------------------------------------------------------------


def get_weather(settings: WeatherSettings, cache_dir: Path, *, now: datetime | None = None,
                offline: bool = False) -> WeatherResult:
    """The weather for the configured location. `offline` uses caches only (no network)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if not settings.enabled:
        return WeatherResult("disabled", None, resolve_location_cached(settings, cache_dir))
    try:
        return _get_weather(settings, cache_dir, now, offline)
    except Exception as exc:  # weather must never fail a run
        logger.warning("weather.unexpected_error", error=repr(exc))
        try:  # the configured place still gives the time of day by the sun
            location = resolve_location_cached(settings, cache_dir)
        except Exception:
            location = None
        return WeatherResult("absent", None, location, (f"weather: unexpected error ({exc!r}); "
                                                         "mood from time and season only",))


def _get_weather(settings: WeatherSettings, cache_dir: Path, now: datetime, offline: bool) -> WeatherResult:
    warnings: list[str] = []
    deadline = Deadline(settings.deadline_seconds)  # one budget for every request below
    location = resolve_location_cached(settings, cache_dir)
    if location is None and settings.location.place and not offline:
        try:
            location = _geocode(settings, cache_dir, settings.location.place, now, deadline)
        except WeatherFailure as exc:
            warnings.append(f"weather: could not resolve place {settings.location.place!r}: {exc}")
    if location is None:
        if not settings.location.place:
            warnings.append("weather: no location set (weather.location.place or latitude/longitude); "
                            "mood from time and season only")
        return WeatherResult("absent", None, None, tuple(warnings))

    lat, lon = coarse(location.latitude), coarse(location.longitude)
    cache_file = cache_dir / f"{settings.provider}-{lat:.2f}_{lon:.2f}.json"
    cached = _read_json(cache_file)
    age = _age(cached, now)
    cached_report, cached_notes = _usable(cached) if age is not None else (None, [])
    if cached_report is not None and age is not None and age <= timedelta(minutes=settings.cache_minutes):
        return WeatherResult("live", cached_report, location, (*warnings, *cached_notes))

    failure: str
    backoff_until = _backoff_until(cache_dir, settings.provider, now)
    if offline:
        failure = "offline (--no-weather)"
    elif backoff_until is not None:
        failure = f"rate limited until {backoff_until.isoformat(timespec='seconds')}"
    else:
        try:
            report, notes = _fetch(settings, location, now, deadline)
        except WeatherFailure as exc:
            failure = str(exc)
            if exc.retry_after is not None:  # at most a day: a Retry-After of 10^12 s (or NaN) is no plan
                wait = exc.retry_after if 0 <= exc.retry_after <= 86400 else 86400
                _set_backoff(cache_dir, settings.provider, now + timedelta(seconds=wait))
        else:
            _write_cache(cache_file, {"fetched_at": now.isoformat(), "report": report})
            return WeatherResult("live", report, location, (*warnings, *notes))

    if cached_report is not None and age is not None and age <= timedelta(hours=settings.stale_hours):
        minutes = int(age.total_seconds() // 60)
        warnings.append(f"weather: {failure}; using a stale report from {minutes} min ago")
        logger.warning("weather.stale", reason=failure, age_minutes=minutes)
        return WeatherResult("stale", cached_report, location, (*warnings, *cached_notes))
    warnings.append(f"weather: {failure}; no usable cached report, mood from time and season only")
    logger.warning("weather.absent", reason=failure)
    return WeatherResult("absent", None, location, tuple(warnings))


def resolve_location_cached(settings: WeatherSettings, cache_dir: Path) -> Location | None:
    """Coordinates from settings, else from the geocoding cache; never touches the network."""
    loc = settings.location
    if loc.latitude is not None and loc.longitude is not None:
        return _location(loc.latitude, loc.longitude, loc.place)
    if loc.place:
        entry = (_read_json(cache_dir / "geocode.json") or {}).get(_place_key(loc.place))
        if isinstance(entry, dict):
            name = entry.get("name")
            return _location(entry.get("latitude"), entry.get("longitude"), name if isinstance(name, str) else None)
    return None


def _location(latitude: Any, longitude: Any, name: str | None) -> Location | None:
    """A Location if the coordinates are a place on Earth (not NaN, not off the globe), else None."""
    if not valid_coordinates(latitude, longitude):
        logger.warning("weather.bad_coordinates", latitude=repr(latitude), longitude=repr(longitude))
        return None
    return Location(float(latitude), float(longitude), name)


def coarse(value: float) -> float:
    """A coordinate rounded to 2 decimals (about 1 km): all the weather service (or a record) needs."""
    return round(value, 2) + 0.0  # + 0.0 turns -0.0 into 0.0


# --- providers ---------------------------------------------------------------------------------


def _fetch(settings: WeatherSettings, location: Location, now: datetime,
           deadline: Deadline) -> tuple[dict[str, Any], list[str]]:
    """A sanitized report and its warnings; WeatherFailure if there is no usable one."""
    notes: list[str] = []
    if settings.provider == "nws":
        raw = _fetch_nws(settings, location, now, deadline)
    else:
        raw = _fetch_open_meteo(settings, location, now, deadline, notes)
    try:
        report, found = sanitize(raw)
    except BadReport as exc:
        raise WeatherFailure(f"unusable {settings.provider} report: {exc}") from None
    return report, notes + found


def _fetch_open_meteo(settings: WeatherSettings, location: Location, now: datetime, deadline: Deadline,
                      notes: list[str]) -> dict[str, Any]:
    data = get_json(settings.open_meteo_url, {
        "latitude": f"{coarse(location.latitude):.2f}", "longitude": f"{coarse(location.longitude):.2f}",
        "current": "temperature_2m,weather_code,wind_speed_10m,is_day",
        "daily": "sunrise,sunset", "timezone": "auto", "forecast_days": 2, "wind_speed_unit": "kmh",
    }, settings, deadline)
    try:
        return open_meteo_report(data, now, notes)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise WeatherFailure(f"unexpected Open-Meteo answer ({type(exc).__name__}: {exc})") from None


def _fetch_nws(settings: WeatherSettings, location: Location, now: datetime, deadline: Deadline) -> dict[str, Any]:
    root = settings.nws_url.rstrip("/")
    points = get_json(f"{root}/points/{coarse(location.latitude):.2f},{coarse(location.longitude):.2f}",
                      None, settings, deadline)
    try:
        hourly_url = str(points["properties"]["forecastHourly"])
    except (KeyError, TypeError):
        raise WeatherFailure("unexpected NWS points answer (no properties.forecastHourly)") from None
    if origin(hourly_url) != origin(settings.nws_url):  # follow-ups stay on the configured API host
        raise WeatherFailure(f"NWS answered with a forecast URL on another host ({hourly_url!r}); "
                             f"only {settings.nws_url!r} is trusted")
    forecast = get_json(hourly_url, None, settings, deadline)
    try:
        return nws_report(forecast["properties"]["periods"][0], now)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise WeatherFailure(f"unexpected NWS forecast answer ({type(exc).__name__}: {exc})") from None


def _geocode(settings: WeatherSettings, cache_dir: Path, place: str, now: datetime,
             deadline: Deadline) -> Location:
    name = place.split(",")[0].strip()  # the API matches a name; the rest narrows the choice
    data = get_json(settings.geocoding_url, {"name": name, "count": 10, "language": "en", "format": "json"},
                    settings, deadline)
    try:
        results = [r for r in data.get("results") or [] if isinstance(r, dict)]
    except (AttributeError, TypeError):
        raise WeatherFailure("unexpected geocoding answer") from None
    if not results:
        raise WeatherFailure("no match")
    qualifiers = [q.strip().lower() for q in place.split(",")[1:] if q.strip()]

    def score(r: dict[str, Any]) -> int:
        text = " ".join(str(r.get(k, "")) for k in ("country", "country_code", "admin1", "admin2")).lower()
        return sum(q in text for q in qualifiers)

    best = max(results, key=score)  # max keeps the API's (population) order among ties
    found = _location(best.get("latitude"), best.get("longitude"),
                      ", ".join(str(best[k]) for k in ("name", "admin1", "country") if best.get(k)))
    if found is None:
        raise WeatherFailure("unexpected geocoding answer (no valid latitude/longitude)")
    loc = found
    cache_file = cache_dir / "geocode.json"
    entries = _read_json(cache_file) or {}
    entries[_place_key(place)] = {"latitude": loc.latitude, "longitude": loc.longitude, "name": loc.name,
                                  "resolved_at": now.isoformat()}
    _write_cache(cache_file, entries)
    logger.info("weather.geocoded", place=place, name=loc.name, lat=loc.latitude, lon=loc.longitude)
    return loc


# --- cache helpers ------------------------------------------------------------------------------


def _place_key(place: str) -> str:
    return " ".join(place.lower().split())


def _read_json(path: Path) -> Any:
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _usable(cached: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """A cached report after the same sanity rules as a fresh one (caches predate the rules)."""
    try:
        return sanitize(cached["report"])
    except BadReport as exc:
        logger.warning("weather.cache_unusable", reason=str(exc))
        return None, []


def _age(cached: Any, now: datetime) -> timedelta | None:
    if not isinstance(cached, dict) or not isinstance(cached.get("report"), dict):
        return None
    try:
        fetched = datetime.fromisoformat(str(cached["fetched_at"]))
    except (KeyError, ValueError):
        return None
    if fetched.tzinfo is None:
        fetched = fetched.replace(tzinfo=UTC)
    age = now - fetched
    return age if age >= timedelta(minutes=-5) else None  # a report from the future: clock skew, ignore


def _backoff_until(cache_dir: Path, provider: str, now: datetime) -> datetime | None:
    value = (_read_json(cache_dir / "backoff.json") or {}).get(provider)
    try:
        until = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)  # a hand-edited file: comparing naive and aware would raise
    return until if until is not None and until > now else None


def _set_backoff(cache_dir: Path, provider: str, until: datetime) -> None:
    entries = _read_json(cache_dir / "backoff.json") or {}
    entries[provider] = until.isoformat()
    _write_cache(cache_dir / "backoff.json", entries)


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    """Atomic write; a cache we cannot write costs a refetch next time, never the run."""
    try:
        atomic.write_json(path, data)
    except OSError as exc:
        logger.warning("weather.cache_write_failed", file=str(path), error=exc.strerror)
