"""Weather fetching against a real HTTP server on 127.0.0.1: good data, errors, 429, timeouts, garbage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ai_wallpaper.config.settings import LocationSettings, WeatherSettings
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene.weather import get_weather
from tests.weather_server import WeatherServer, open_meteo_body, running_server

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[WeatherServer]:
    with running_server() as s:
        yield s


def settings_for(server: WeatherServer, **kw: object) -> WeatherSettings:
    location = kw.pop("location", LocationSettings(latitude=38.72, longitude=-9.14))
    base: dict[str, object] = {
        "location": location,
        "open_meteo_url": f"{server.base}/v1/forecast",
        "geocoding_url": f"{server.base}/v1/search",
        "nws_url": server.base,
        "connect_timeout": 0.5,
        "read_timeout": 0.3,
    }
    base.update(kw)
    return WeatherSettings(**base)  # type: ignore[arg-type]


def test_good_answer_is_live_and_cached_atomically(server: WeatherServer, paths: Paths) -> None:
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.status == "live" and result.warnings == ()
    assert result.report is not None
    assert (result.report["weather_code"], result.report["condition"]) == (45, "fog")
    assert result.report["temperature_c"] == 4.5 and result.report["wind_kmh"] == 22.0
    assert result.report["sunrise"] == "2026-11-28T07:30:00+00:00"
    assert server.count("/v1/forecast") == 1
    assert "ai-wallpaper" in server.headers[0]["User-Agent"]
    files = sorted(p.name for p in paths.weather_cache_dir.iterdir())
    assert files == ["open-meteo-38.72_-9.14.json"]  # no temp files left behind
    cached = json.loads((paths.weather_cache_dir / files[0]).read_text())
    assert cached["report"] == result.report and cached["fetched_at"] == T0.isoformat()


def test_local_sun_times_are_converted_to_utc(server: WeatherServer, paths: Paths) -> None:
    server.forecast = open_meteo_body(offset_s=3600, sunrise="08:30", sunset="18:05")
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.report is not None
    assert result.report["sunrise"] == "2026-11-28T07:30:00+00:00"
    assert result.report["sunset"] == "2026-11-28T17:05:00+00:00"


def test_fresh_cache_avoids_the_network_until_it_expires(server: WeatherServer, paths: Paths) -> None:
    s = settings_for(server)
    get_weather(s, paths.weather_cache_dir, now=T0)
    again = get_weather(s, paths.weather_cache_dir, now=T0 + timedelta(minutes=29))
    assert again.status == "live" and server.count("/v1/forecast") == 1
    later = get_weather(s, paths.weather_cache_dir, now=T0 + timedelta(minutes=31))
    assert later.status == "live" and server.count("/v1/forecast") == 2


def test_server_error_falls_back_to_stale_cache_then_absent(server: WeatherServer, paths: Paths) -> None:
    s = settings_for(server)
    fresh = get_weather(s, paths.weather_cache_dir, now=T0)
    server.mode = "error"
    stale = get_weather(s, paths.weather_cache_dir, now=T0 + timedelta(hours=2))
    assert stale.status == "stale" and stale.report == fresh.report
    assert "HTTP 500" in stale.warnings[0] and "120 min ago" in stale.warnings[0]
    gone = get_weather(s, paths.weather_cache_dir, now=T0 + timedelta(hours=12, minutes=1))
    assert gone.status == "absent" and gone.report is None
    assert "no usable cached report" in gone.warnings[0]


def test_rate_limit_is_remembered_until_retry_after(server: WeatherServer, paths: Paths) -> None:
    s = settings_for(server)
    get_weather(s, paths.weather_cache_dir, now=T0)
    server.mode = "ratelimit"
    t1 = T0 + timedelta(hours=1)
    limited = get_weather(s, paths.weather_cache_dir, now=t1)
    assert limited.status == "stale" and "429" in limited.warnings[0]
    assert server.count("/v1/forecast") == 2
    server.mode = "good"
    during = get_weather(s, paths.weather_cache_dir, now=t1 + timedelta(seconds=60))
    assert during.status == "stale" and "rate limited until" in during.warnings[0]
    assert server.count("/v1/forecast") == 2  # Retry-After (120 s) honoured: no request
    after = get_weather(s, paths.weather_cache_dir, now=t1 + timedelta(seconds=121))
    assert after.status == "live" and server.count("/v1/forecast") == 3


def test_slow_server_times_out_quickly_and_never_raises(server: WeatherServer, paths: Paths) -> None:
    server.mode = "slow"
    started = time.monotonic()
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    elapsed = time.monotonic() - started
    assert result.status == "absent" and result.report is None
    assert "timed out" in result.warnings[0]
    assert elapsed < 0.9, f"read timeout 0.3 s but took {elapsed:.2f} s"


@pytest.mark.parametrize(
    ("mode", "message"), [("garbage", "invalid JSON"), ("deep", "invalid JSON"),
                          ("wrongshape", "unexpected Open-Meteo answer")]
)
def test_bad_bodies_are_absent_with_a_reason(
    server: WeatherServer, paths: Paths, mode: str, message: str
) -> None:
    server.mode = mode
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.status == "absent" and message in result.warnings[0]
    assert not (paths.weather_cache_dir / "open-meteo-38.72_-9.14.json").exists()


def test_connection_refused_is_absent(paths: Paths) -> None:
    with running_server() as s:
        dead = settings_for(s)
    result = get_weather(dead, paths.weather_cache_dir, now=T0)  # server is closed now
    assert result.status == "absent" and "failed" in result.warnings[0]


def test_corrupt_cache_file_is_ignored(server: WeatherServer, paths: Paths) -> None:
    paths.weather_cache_dir.mkdir(parents=True)
    (paths.weather_cache_dir / "open-meteo-38.72_-9.14.json").write_text("{not json")
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.status == "live" and server.count("/v1/forecast") == 1


def test_unwritable_cache_still_returns_live_weather(server: WeatherServer, tmp_path: Path) -> None:
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("x")
    result = get_weather(settings_for(server), blocker, now=T0)
    assert result.status == "live" and result.report is not None


def test_place_is_geocoded_once_and_cached(server: WeatherServer, paths: Paths) -> None:
    s = settings_for(server, location=LocationSettings(place="Lisbon, Portugal"))
    first = get_weather(s, paths.weather_cache_dir, now=T0)
    assert first.status == "live" and first.location is not None
    # The qualifier picks Portugal's Lisbon over the first (Ohio) result.
    assert (first.location.latitude, first.location.longitude) == (38.7223, -9.1393)
    assert first.location.name == "Lisbon, Lisbon, Portugal"
    later = get_weather(s, paths.weather_cache_dir, now=T0 + timedelta(days=3))
    assert later.status == "live" and later.location == first.location
    assert server.count("/v1/search") == 1 and server.count("/v1/forecast") == 2


def test_unknown_place_is_absent_with_a_warning(server: WeatherServer, paths: Paths) -> None:
    server.mode = "empty-geocode"
    s = settings_for(server, location=LocationSettings(place="Nowhere-on-earth"))
    result = get_weather(s, paths.weather_cache_dir, now=T0)
    assert (
        result.status == "absent"
        and "could not resolve place 'Nowhere-on-earth': no match" in result.warnings[0]
    )
    assert server.count("/v1/forecast") == 0


def test_nws_provider(server: WeatherServer, paths: Paths) -> None:
    result = get_weather(settings_for(server, provider="nws"), paths.weather_cache_dir, now=T0)
    assert result.status == "live" and result.report is not None
    assert result.report["condition"] == "rain" and result.report["text"] == "Light Rain Likely"
    assert result.report["temperature_c"] == 10.0 and result.report["wind_kmh"] == 24.1
    assert server.requests == ["/points/38.72,-9.14", "/gridpoints/X/1,2/hourly"]


def test_disabled_and_missing_location_make_no_requests(server: WeatherServer, paths: Paths) -> None:
    off = get_weather(settings_for(server, enabled=False), paths.weather_cache_dir, now=T0)
    assert off.status == "disabled" and off.report is None
    nowhere = get_weather(settings_for(server, location=LocationSettings()), paths.weather_cache_dir, now=T0)
    assert nowhere.status == "absent" and "no location set" in nowhere.warnings[0]
    assert server.requests == []


def test_offline_uses_cache_only(server: WeatherServer, paths: Paths) -> None:
    s = settings_for(server)
    get_weather(s, paths.weather_cache_dir, now=T0)
    stale = get_weather(s, paths.weather_cache_dir, now=T0 + timedelta(hours=1), offline=True)
    assert stale.status == "stale" and server.count("/v1/forecast") == 1
