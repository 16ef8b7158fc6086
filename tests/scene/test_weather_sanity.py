"""Weather values are sane: what a provider sends that cannot be real is "no data", never a mood.

Against the real HTTP server in tests/weather_server.py (which writes NaN and Infinity as bare
JSON tokens, as Python's json does and some servers do): NaN, infinities and impossible values
become None with a warning, an unknown WMO code rejects the report, polar day and night work
without sun times, and the plan's JSON never contains a bare NaN. Plus mood.py itself at
latitude +-89 in summer and winter.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from ai_wallpaper import cli
from ai_wallpaper.config.settings import LocationSettings, settings_from_dict
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene import mood as m
from ai_wallpaper.scene import weather
from ai_wallpaper.scene.planner import PlanRequest, make_plan
from ai_wallpaper.scene.weather import get_weather
from tests.scene.test_weather import settings_for
from tests.weather_server import WeatherServer, open_meteo_body, running_server

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
NAN, INF = float("nan"), float("inf")
CACHE = "open-meteo-38.72_-9.14.json"


@pytest.fixture
def server() -> Iterator[WeatherServer]:
    with running_server() as s:
        yield s


def _strict_json(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"bare {token} in JSON output")

    return json.loads(text, parse_constant=refuse)


def _body(**current: Any) -> dict[str, Any]:
    body = open_meteo_body()
    body["current"].update(current)
    return body


# --- impossible values become "no data" ------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "report_key", "words"), [
    ("temperature_2m", NAN, "temperature_c", "temperature nan °C"),
    ("temperature_2m", INF, "temperature_c", "temperature inf °C"),
    ("temperature_2m", 75.0, "temperature_c", "temperature 75.0 °C"),
    ("temperature_2m", -120, "temperature_c", "temperature -120 °C"),
    ("temperature_2m", "warm", "temperature_c", "temperature 'warm' °C"),
    ("wind_speed_10m", -INF, "wind_kmh", "wind speed -inf km/h"),
    ("wind_speed_10m", -3.0, "wind_kmh", "wind speed -3.0 km/h"),
    ("wind_speed_10m", 900.0, "wind_kmh", "wind speed 900.0 km/h"),
    ("wind_speed_10m", 10**400, "wind_kmh", "wind speed 1000000"),
])
def test_impossible_values_are_dropped_with_a_warning(server: WeatherServer, paths: Paths, field: str,
                                                      value: Any, report_key: str, words: str) -> None:
    server.forecast = _body(**{field: value})
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.status == "live" and result.report is not None
    assert result.report[report_key] is None
    assert result.report["condition"] == "fog" and result.report["weather_code"] == 45  # the rest is kept
    assert any(words in w and "not a possible value" in w for w in result.warnings), result.warnings
    cached = json.loads((paths.weather_cache_dir / CACHE).read_text())  # the cache holds the clean report
    assert cached["report"] == result.report
    mood = m.build_mood(T0, latitude=38.72, longitude=-9.14, weather=result.report, source=result.status)
    assert mood["temperature_band" if report_key == "temperature_c" else "wind"] is None
    json.dumps(mood, allow_nan=False)


@pytest.mark.parametrize("code", [42, 100, -1, NAN, INF, 45.5, "45", True, None])
def test_an_unknown_weather_code_rejects_the_report(server: WeatherServer, paths: Paths, code: Any) -> None:
    server.forecast = _body(weather_code=code)
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.status == "absent" and result.report is None
    assert "unusable open-meteo report" in result.warnings[0] and "not a WMO weather code" in result.warnings[0]
    assert not (paths.weather_cache_dir / CACHE).exists()
    assert result.location is not None  # time of day still comes from the sun at this place


def test_an_unknown_code_falls_back_to_the_stale_report(server: WeatherServer, paths: Paths) -> None:
    s = settings_for(server)
    good = get_weather(s, paths.weather_cache_dir, now=T0)
    server.forecast = _body(weather_code=NAN)
    later = get_weather(s, paths.weather_cache_dir, now=T0 + timedelta(hours=1))
    assert later.status == "stale" and later.report == good.report


@pytest.mark.parametrize(("is_day", "kept"), [(1, True), (0, False), (True, True), (2, None), ("yes", None),
                                               (NAN, None)])
def test_is_day_must_be_day_or_night(server: WeatherServer, paths: Paths, is_day: Any, kept: bool | None) -> None:
    server.forecast = _body(is_day=is_day)
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.report is not None and result.report["is_day"] is kept
    assert any("is_day" in w for w in result.warnings) == (kept is None)


def test_sunset_before_sunrise_is_ignored(server: WeatherServer, paths: Paths) -> None:
    server.forecast = open_meteo_body(sunrise="17:10", sunset="07:30")
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.report is not None and result.report["sunrise"] is None and result.report["sunset"] is None
    assert any("not within a day after sunrise" in w for w in result.warnings)
    mood = m.build_mood(T0, latitude=38.72, longitude=-9.14, weather=result.report, source="live")
    assert mood["time_basis"] == "astronomical" and mood["time_of_day"] == "day"


@pytest.mark.parametrize("offset", [NAN, INF, 10**9, "GMT"])
def test_a_bad_utc_offset_drops_only_the_sun_times(server: WeatherServer, paths: Paths, offset: Any) -> None:
    server.forecast = open_meteo_body()
    server.forecast["utc_offset_seconds"] = offset
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.status == "live" and result.report is not None
    assert result.report["sunrise"] is None and result.report["temperature_c"] == 4.5
    assert any("UTC offset" in w for w in result.warnings)


def test_nws_impossible_values(server: WeatherServer, paths: Paths) -> None:
    # The NWS follow-up URL points back at this server's /v1/forecast, which serves `forecast`.
    server.forecast_hourly_url = f"{server.base}/v1/forecast"
    server.forecast = {"properties": {"periods": [{
        "startTime": "2026-11-28T09:00:00-05:00", "isDaytime": "maybe", "temperature": NAN,
        "temperatureUnit": "F", "windSpeed": "9999 mph", "shortForecast": "Light Rain Likely"}]}}
    result = get_weather(settings_for(server, provider="nws"), paths.weather_cache_dir, now=T0)
    assert result.status == "live" and result.report is not None
    report = result.report
    assert (report["temperature_c"], report["wind_kmh"], report["is_day"]) == (None, None, None)
    assert report["condition"] == "rain" and len(result.warnings) == 3, result.warnings


def test_an_old_cache_with_nan_is_cleaned_when_read(server: WeatherServer, paths: Paths) -> None:
    paths.weather_cache_dir.mkdir(parents=True)
    report = {"provider": "open-meteo", "weather_code": 61, "condition": "rain", "temperature_c": NAN,
              "wind_kmh": INF, "is_day": True, "sunrise": None, "sunset": None, "observed_at": "x", "text": None}
    (paths.weather_cache_dir / CACHE).write_text(json.dumps({"fetched_at": T0.isoformat(), "report": report}))
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0 + timedelta(minutes=5))
    assert result.status == "live" and server.requests == []  # the fresh cache was used...
    assert result.report is not None and result.report["temperature_c"] is None  # ...cleaned
    assert result.report["wind_kmh"] is None and result.report["condition"] == "rain"
    (paths.weather_cache_dir / CACHE).write_text(json.dumps({"fetched_at": T0.isoformat(),
                                                             "report": {**report, "weather_code": NAN}}))
    refetched = get_weather(settings_for(server), paths.weather_cache_dir, now=T0 + timedelta(minutes=5))
    assert refetched.status == "live" and server.count("/v1/forecast") == 1  # unusable cache: fetched


def test_geocoding_nan_coordinates(server: WeatherServer, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    original = server.answer

    def answer(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        if path == "/v1/search":
            return 200, {}, json.dumps({"results": [{"name": "X", "latitude": NAN, "longitude": 2.0}]}).encode()
        return original(path, query)

    monkeypatch.setattr(server, "answer", answer)
    s = settings_for(server, location=LocationSettings(place="Nowhere"))
    result = get_weather(s, paths.weather_cache_dir, now=T0)
    assert result.status == "absent" and result.location is None
    assert "no valid latitude/longitude" in result.warnings[0] and server.count("/v1/forecast") == 0


def test_absurd_retry_after_and_a_hand_edited_backoff(server: WeatherServer, paths: Paths) -> None:
    server.mode, server.retry_after = "ratelimit", "1e20"
    s = settings_for(server)
    assert get_weather(s, paths.weather_cache_dir, now=T0).status == "absent"
    until = datetime.fromisoformat(json.loads((paths.weather_cache_dir / "backoff.json").read_text())["open-meteo"])
    assert until == T0 + timedelta(days=1)  # capped, not an OverflowError
    (paths.weather_cache_dir / "backoff.json").write_text(json.dumps({"open-meteo": "2026-11-28T12:00:00"}))
    naive = get_weather(s, paths.weather_cache_dir, now=T0)  # a naive time no longer breaks the comparison
    assert "rate limited until 2026-11-28T12:00:00+00:00" in naive.warnings[0]


def test_an_unexpected_error_keeps_the_location(server: WeatherServer, paths: Paths,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(weather, "_fetch", broken)
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.status == "absent" and "unexpected error" in result.warnings[0]
    assert result.location is not None and (result.location.latitude, result.location.longitude) == (38.72, -9.14)
    mood = m.build_mood(T0, latitude=38.72, longitude=-9.14, weather=result.report, source=result.status)
    assert mood["time_basis"] == "astronomical"


# --- polar day and night ------------------------------------------------------------------------


@pytest.mark.parametrize(("day", "is_day", "expected"), [("2026-06-21", 1, "day"), ("2026-12-21", 0, "night")])
@pytest.mark.parametrize("sun", ["null", "equal"])
def test_polar_day_and_night_from_open_meteo(server: WeatherServer, paths: Paths, day: str, is_day: int,
                                             expected: str, sun: str) -> None:
    body = open_meteo_body(day=day)
    body["current"]["is_day"] = is_day
    body["daily"]["sunrise"] = [None] if sun == "null" else [f"{day}T00:00"]
    body["daily"]["sunset"] = [None] if sun == "null" else [f"{day}T00:00"]
    server.forecast = body
    now = datetime.fromisoformat(f"{day}T12:00:00+00:00")
    s = settings_for(server, location=LocationSettings(latitude=78.22, longitude=15.65))  # Longyearbyen
    result = get_weather(s, paths.weather_cache_dir, now=now)
    assert result.status == "live" and result.warnings == ()  # polar is not a problem
    assert result.report is not None and result.report["sunrise"] is None and result.report["sunset"] is None
    mood = m.build_mood(now, latitude=78.22, longitude=15.65, weather=result.report, source=result.status)
    assert (mood["time_of_day"], mood["time_basis"]) == (expected, "weather")


@pytest.mark.parametrize("latitude", [89.0, -89.0])
@pytest.mark.parametrize("month", [6, 12])
def test_mood_at_latitude_89(latitude: float, month: int) -> None:
    north_summer = (latitude > 0) == (month == 6)
    for hour in (0, 6, 12, 18):
        now = datetime(2026, month, 21, hour, tzinfo=UTC)
        assert m.time_of_day(now, latitude, 0.0) == ("day" if north_summer else "night", "astronomical")
        mood = m.build_mood(now, latitude=latitude, longitude=0.0)
        assert mood["season"] == "summer" if north_summer else "winter"
        assert mood["hemisphere"] == ("north" if latitude > 0 else "south")
        json.dumps(mood, allow_nan=False)
    sun = m.sun_times(latitude, 0.0, date(2026, month, 21))
    assert sun.polar == ("day" if north_summer else "night") and sun.sunrise is None


def test_sun_times_never_fail_near_the_poles() -> None:
    for latitude in (-90.0, -89.0, -66.6, 66.6, 89.0, 90.0):
        for offset in range(0, 366, 3):
            sun = m.sun_times(latitude, 179.9, date(2026, 1, 1) + timedelta(days=offset))
            assert sun.polar in ("day", "night") or (sun.sunrise is not None and sun.sunset is not None
                                                     and sun.sunrise < sun.sunset)


def test_mood_refuses_what_cannot_be_real() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    weird = {"weather_code": NAN, "temperature_c": NAN, "wind_kmh": -INF, "is_day": "yes",
             "sunrise": "2026-11-28T17:00:00+00:00", "sunset": "2026-11-28T07:00:00+00:00", "observed_at": 5}
    mood = m.build_mood(now, latitude=NAN, longitude=INF, weather=weird, source="live")
    assert (mood["temperature_c"], mood["temperature_band"], mood["wind_kmh"], mood["wind"]) == (None,) * 4
    assert (mood["weather_code"], mood["condition"], mood["observed_at"]) == (None, None, None)
    assert (mood["hemisphere"], mood["location"], mood["time_basis"]) == ("unknown", None, "clock")
    json.dumps(mood, allow_nan=False)
    assert m.temperature_band(NAN) is None and m.wind_band(INF) is None and m.temperature_band(-91) is None
    assert m.condition_family(52) is None and m.condition_family(45.0) == "fog"  # only codes Open-Meteo uses
    assert m.time_of_day(now, NAN, 0.0) == ("day", "clock")
    with pytest.raises(ValueError, match="not a place on Earth"):
        m.sun_times(NAN, 0.0, date(2026, 1, 1))


# --- the plan ----------------------------------------------------------------------------------


def _hostile_forecast() -> dict[str, Any]:
    body = open_meteo_body()
    body["current"].update(temperature_2m=NAN, wind_speed_10m=INF, is_day=NAN)
    body["daily"]["sunrise"] = [NAN]
    return body


def test_plan_json_has_no_bare_nan(server: WeatherServer, paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    server.forecast = _hostile_forecast()
    plan = make_plan(paths, settings_from_dict({"weather": {
        "location": {"latitude": 38.72, "longitude": -9.14}, "open_meteo_url": f"{server.base}/v1/forecast"}}),
        PlanRequest(seed=9, now=T0))
    assert plan.weather_status == "live" and plan.mood is not None and plan.mood["condition"] == "fog"
    assert plan.mood["temperature_c"] is None and plan.mood["wind_kmh"] is None
    json.dumps(plan.to_json(), allow_nan=False)  # raises on any NaN or infinity anywhere

    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text(f"weather:\n  location: {{latitude: 38.72, longitude: -9.14}}\n"
                                   f"  open_meteo_url: {server.base}/v1/forecast\n")
    capsys.readouterr()  # what was logged so far
    assert cli.main(["plan", "--json", "--seed", "9"]) == 0
    out = _strict_json(capsys.readouterr().out)
    assert out["weather_status"] == "live" and out["mood"]["temperature_c"] is None
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in out["mood"].values())


def test_a_cached_settings_location_never_reaches_the_mood_as_nan(paths: Paths) -> None:
    paths.weather_cache_dir.mkdir(parents=True)
    (paths.weather_cache_dir / "geocode.json").write_text(
        '{"lisbon": {"latitude": NaN, "longitude": Infinity, "name": "Lisbon"}}')
    s = settings_from_dict({"weather": {"location": {"place": "Lisbon"}}})
    assert weather.resolve_location_cached(s.weather, paths.weather_cache_dir) is None
    plan = make_plan(paths, s, PlanRequest(seed=1, now=T0, use_weather=False))
    json.dumps(plan.to_json(), allow_nan=False)
    assert plan.mood is not None and plan.mood["time_basis"] == "clock"
