"""The weather's network limits, against a real (hostile) HTTP server on 127.0.0.1.

One wall-clock deadline bounds the whole fetch whatever the server does (trickle, hang after the
headers, never answer, slow geocoding + forecast); bodies are size-capped without a Content-Length;
only https (or loopback http) is requested, redirects are refused, NWS follow-ups stay on the NWS
host, and coordinates leave the machine rounded to 2 decimals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ai_wallpaper.config.settings import LocationSettings, WeatherSettings, settings_from_dict
from ai_wallpaper.config.urls import url_problem
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene.weather import coarse, get_weather
from ai_wallpaper.scene.weather_http import MAX_BODY_BYTES
from tests.scene.test_weather import settings_for
from tests.weather_server import WeatherServer, running_server

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
DEADLINE = 2.0
SLACK = 1.5  # the bound the task sets: deadline + well under a second, with room for a loaded CI box


@pytest.fixture
def server() -> Iterator[WeatherServer]:
    with running_server() as s:
        yield s


def patient(server: WeatherServer, **kw: object) -> WeatherSettings:
    """Per-read timeouts far above the deadline, so only the deadline can end a hostile fetch."""
    base: dict[str, object] = {"connect_timeout": 30.0, "read_timeout": 30.0, "deadline_seconds": DEADLINE}
    base.update(kw)
    return settings_for(server, **base)


def wait_for_hangup(server: WeatherServer, seconds: float = 2.0) -> float | None:
    end = time.monotonic() + seconds
    while not server.hangups and time.monotonic() < end:
        time.sleep(0.02)
    return server.hangups[0] if server.hangups else None


def workers_gone(seconds: float = 1.0) -> bool:
    end = time.monotonic() + seconds
    while any(t.name == "weather-http" for t in threading.enumerate()):
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("mode", ["trickle", "trickle-status", "headers-hang", "no-answer"])
def test_hostile_server_costs_at_most_the_deadline(server: WeatherServer, paths: Paths, mode: str) -> None:
    server.mode = mode
    started = time.monotonic()
    result = get_weather(patient(server), paths.weather_cache_dir, now=T0)
    elapsed = time.monotonic() - started
    assert DEADLINE - 0.1 <= elapsed < DEADLINE + SLACK, f"{mode}: took {elapsed:.2f} s"
    assert result.status == "absent" and result.report is None
    assert "within the 2 s deadline (weather.deadline_seconds)" in result.warnings[0]
    assert server.count("/v1/forecast") == 1
    # The abandoned connection is shut down, not left to a worker thread reading it for hours.
    hangup = wait_for_hangup(server)
    assert hangup is not None and hangup - started < DEADLINE + SLACK, f"{mode}: connection left open"
    assert workers_gone(), f"{mode}: a weather-http worker thread is still running"


def test_hostile_server_falls_back_to_the_stale_cache(server: WeatherServer, paths: Paths) -> None:
    s = patient(server)
    fresh = get_weather(s, paths.weather_cache_dir, now=T0)
    assert fresh.status == "live"
    server.mode = "trickle"
    later = T0.replace(hour=11)
    started = time.monotonic()
    stale = get_weather(s, paths.weather_cache_dir, now=later)
    assert time.monotonic() - started < DEADLINE + SLACK
    assert stale.status == "stale" and stale.report == fresh.report
    assert "deadline" in stale.warnings[0] and "stale report from 120 min ago" in stale.warnings[0]


@pytest.mark.parametrize("provider", ["open-meteo", "nws"])
def test_one_deadline_for_all_requests_together(server: WeatherServer, paths: Paths, provider: str) -> None:
    # Each answer takes 1.2 s (well inside the 30 s read timeout), two of them exceed the 2 s deadline.
    server.mode, server.slow_seconds = "slow", 1.2
    location = LocationSettings(place="Lisbon, Portugal") if provider == "open-meteo" else None
    s = patient(server, provider=provider, **({"location": location} if location else {}))
    started = time.monotonic()
    result = get_weather(s, paths.weather_cache_dir, now=T0)
    elapsed = time.monotonic() - started
    assert DEADLINE - 0.1 <= elapsed < DEADLINE + SLACK, f"took {elapsed:.2f} s"
    assert result.status == "absent" and "deadline" in result.warnings[-1]
    if provider == "open-meteo":  # geocoding finished in time and is kept; the forecast did not
        assert server.requests == ["/v1/search", "/v1/forecast"]
        assert result.location is not None and result.location.latitude == 38.7223
    else:
        assert server.requests == ["/points/38.72,-9.14", "/gridpoints/X/1,2/hourly"]


def test_read_timeout_still_applies_inside_the_deadline(server: WeatherServer, paths: Paths) -> None:
    server.mode = "headers-hang"
    started = time.monotonic()
    result = get_weather(patient(server, read_timeout=0.3), paths.weather_cache_dir, now=T0)
    assert time.monotonic() - started < 1.0
    assert result.status == "absent" and "timed out talking to" in result.warnings[0]


@pytest.mark.parametrize("mode", ["huge-chunked", "huge-close", "huge-declared"])
def test_body_size_is_capped_with_or_without_content_length(
    server: WeatherServer, paths: Paths, mode: str
) -> None:
    server.mode = mode
    started = time.monotonic()
    result = get_weather(patient(server), paths.weather_cache_dir, now=T0)
    assert time.monotonic() - started < DEADLINE - 0.5  # refused on size, not by the deadline
    assert result.status == "absent" and f"larger than {MAX_BODY_BYTES} bytes" in result.warnings[0]


def test_redirects_are_not_followed(server: WeatherServer, paths: Paths) -> None:
    server.mode, server.redirect_to = "redirect", f"{server.base}/v1/forecast-elsewhere"
    result = get_weather(settings_for(server), paths.weather_cache_dir, now=T0)
    assert result.status == "absent"
    assert "HTTP 302 redirect" in result.warnings[0] and "not followed" in result.warnings[0]
    assert server.requests == ["/v1/forecast"]


@pytest.mark.parametrize(
    "url",
    ["https://evil.example/gridpoints/X/1,2/hourly", "http://127.0.0.1:{other}/gridpoints/X/1,2/hourly",
     "http://localhost:{port}/gridpoints/X/1,2/hourly", "https://127.0.0.1:{port}/gridpoints/X/1,2/hourly"],
)
def test_nws_follow_up_must_stay_on_the_nws_host(server: WeatherServer, paths: Paths, url: str) -> None:
    with running_server() as other:  # a second live server: the request would succeed if made
        server.forecast_hourly_url = url.format(port=server.port, other=other.port)
        result = get_weather(settings_for(server, provider="nws"), paths.weather_cache_dir, now=T0)
    assert result.status == "absent"
    assert "NWS answered with a forecast URL on another host" in result.warnings[0]
    assert server.requests == ["/points/38.72,-9.14"] and other.requests == []


def test_request_time_refuses_plain_http_to_a_remote_host(paths: Paths) -> None:
    # Built directly (not through the schema), so only the request-time check stands in the way.
    s = WeatherSettings(location=LocationSettings(latitude=38.72, longitude=-9.14),
                        open_meteo_url="http://api.open-meteo.com/v1/forecast", deadline_seconds=DEADLINE)
    started = time.monotonic()
    result = get_weather(s, paths.weather_cache_dir, now=T0)
    assert time.monotonic() - started < 0.5
    assert result.status == "absent" and "refusing to request 'http://api.open-meteo.com" in result.warnings[0]


@pytest.mark.parametrize(
    ("url", "ok"),
    [("https://api.open-meteo.com/v1/forecast", True), ("http://127.0.0.1:8080/x", True),
     ("http://127.9.9.9/x", True), ("http://[::1]:8080/x", True), ("http://localhost:1/x", True),
     ("HTTPS://API.WEATHER.GOV", True), ("http://api.weather.gov", False), ("http://127.0.0.1.nip.io/x", False),
     ("http://localhost.evil.example/x", False), ("http://[::2]/x", False), ("ftp://127.0.0.1/x", False),
     ("https:///nohost", False), ("https://host:99999/x", False), ("api.weather.gov", False)],
)
def test_url_rule(url: str, ok: bool) -> None:
    assert (url_problem(url) is None) is ok


def test_schema_rejects_non_https_urls_with_a_hint() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"weather": {"open_meteo_url": "http://api.open-meteo.com/v1/forecast",
                                        "geocoding_url": "http://127.0.0.1:8080/v1/search",  # loopback: fine
                                        "nws_url": "ftp://api.weather.gov"}})
    assert info.value.problems == [
        "<dict>: weather.open_meteo_url: 'http://api.open-meteo.com/v1/forecast' must use https (plain http is "
        "allowed only to a loopback host: 127.0.0.0/8, ::1, localhost) "
        "(hint: use https://api.open-meteo.com/v1/forecast)",
        "<dict>: weather.nws_url: 'ftp://api.weather.gov' must be an https:// URL with a host "
        "(hint: use an https:// URL such as https://api.weather.gov)",
    ]
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"weather": {"deadline_seconds": 61}})
    assert info.value.problems == ["<dict>: weather.deadline_seconds: must be <= 60, got 61.0"]
    assert settings_from_dict({"weather": {"deadline_seconds": 1}}).weather.deadline_seconds == 1.0
    assert WeatherSettings().deadline_seconds == 10.0


def test_coordinates_sent_and_cache_names_are_coarse(server: WeatherServer, paths: Paths) -> None:
    s = settings_for(server, location=LocationSettings(latitude=38.72368, longitude=-9.13954))
    result = get_weather(s, paths.weather_cache_dir, now=T0)
    assert result.status == "live"
    assert server.queries[0]["latitude"] == ["38.72"] and server.queries[0]["longitude"] == ["-9.14"]
    assert [p.name for p in paths.weather_cache_dir.iterdir()] == ["open-meteo-38.72_-9.14.json"]
    assert (coarse(38.72368), coarse(-9.13954), coarse(-0.001), coarse(51.0)) == (38.72, -9.14, 0.0, 51.0)
    assert str(coarse(-0.001)) == "0.0"  # no "-0.0" in a record or a file name
