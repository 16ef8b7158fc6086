"""A real HTTP server on 127.0.0.1 that plays Open-Meteo, its geocoder and NWS for the weather tests.

`mode` picks the behaviour of the next requests: good data, HTTP 500, 429 with Retry-After, a
slow answer (longer than the client's read timeout), garbage, or JSON of the wrong shape.
Every request path is recorded so tests can assert what was (not) fetched.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


def open_meteo_body(
    *,
    code: int = 45,
    temp: float = 4.5,
    wind: float = 22.0,
    offset_s: int = 0,
    day: str = "2026-11-28",
    sunrise: str = "07:30",
    sunset: str = "17:10",
) -> dict[str, Any]:
    return {
        "latitude": 38.72,
        "longitude": -9.14,
        "utc_offset_seconds": offset_s,
        "timezone": "GMT",
        "current": {
            "time": f"{day}T09:00",
            "temperature_2m": temp,
            "weather_code": code,
            "wind_speed_10m": wind,
            "is_day": 1,
        },
        "daily": {"time": [day], "sunrise": [f"{day}T{sunrise}"], "sunset": [f"{day}T{sunset}"]},
    }


@dataclass
class WeatherServer:
    mode: str = "good"  # good | error | ratelimit | slow | garbage | wrongshape | empty-geocode
    slow_seconds: float = 1.0
    retry_after: str = "120"
    forecast: dict[str, Any] = field(default_factory=open_meteo_body)
    requests: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, prefix: str) -> int:
        return sum(1 for r in self.requests if r.startswith(prefix))

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        if self.mode == "error":
            return 500, {}, b"internal error"
        if self.mode == "ratelimit":
            return 429, {"Retry-After": self.retry_after}, b'{"reason": "too many requests"}'
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        if self.mode == "garbage":
            return 200, {}, b"<html>this is not json{"
        if self.mode == "wrongshape":
            return 200, {}, json.dumps({"current": {"temperature_2m": "warm"}}).encode()
        if path == "/v1/forecast":
            return 200, {}, json.dumps(self.forecast).encode()
        if path == "/v1/search":
            if self.mode == "empty-geocode":
                return 200, {}, b"{}"
            name = query.get("name", [""])[0]
            return (
                200,
                {},
                json.dumps(
                    {
                        "results": [
                            {
                                "name": name,
                                "latitude": 39.1,
                                "longitude": -84.5,
                                "country": "United States",
                                "admin1": "Ohio",
                            },
                            {
                                "name": name,
                                "latitude": 38.7223,
                                "longitude": -9.1393,
                                "country": "Portugal",
                                "admin1": "Lisbon",
                            },
                        ]
                    }
                ).encode(),
            )
        if path.startswith("/points/"):
            return (
                200,
                {},
                json.dumps(
                    {"properties": {"forecastHourly": f"{self.base}/gridpoints/X/1,2/hourly"}}
                ).encode(),
            )
        if path.startswith("/gridpoints/"):
            return (
                200,
                {},
                json.dumps(
                    {
                        "properties": {
                            "periods": [
                                {
                                    "startTime": "2026-11-28T09:00:00-05:00",
                                    "isDaytime": True,
                                    "temperature": 50,
                                    "temperatureUnit": "F",
                                    "windSpeed": "10 to 15 mph",
                                    "shortForecast": "Light Rain Likely",
                                },
                            ]
                        }
                    }
                ).encode(),
            )
        return 404, {}, b"not found"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        parsed = urlparse(self.path)
        state.requests.append(parsed.path)
        state.headers.append(dict(self.headers.items()))
        status, headers, body = state.answer(parsed.path, parse_qs(parsed.query))
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: WeatherServer


@contextmanager
def running_server() -> Iterator[WeatherServer]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    state = WeatherServer(port=httpd.server_address[1])
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
