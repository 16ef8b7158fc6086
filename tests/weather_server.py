"""A real HTTP server on 127.0.0.1 that plays Open-Meteo, its geocoder and NWS for the weather tests.

`mode` picks the behaviour of the next requests: good data, HTTP 500, 429 with Retry-After, a
slow answer (longer than the client's read timeout), garbage, or JSON of the wrong shape; and the
hostile ones: a body trickled one byte a second forever (`trickle`), a status line trickled the
same way (`trickle-status`), headers then silence (`headers-hang`), a request read and never
answered (`no-answer`), a redirect, and bodies over the size cap without a Content-Length
(`huge-chunked`, `huge-close`) or with a too large one (`huge-declared`).
Every request path and query is recorded so tests can assert what was (not) fetched and sent;
`hangups` records when a client closed a connection the server was holding open.
"""

from __future__ import annotations

import json
import select
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
    mode: str = "good"  # see the module docstring
    slow_seconds: float = 1.0
    trickle_interval: float = 1.0
    huge_bytes: int = 3_000_000
    retry_after: str = "120"
    redirect_to: str = "http://example.com/v1/forecast"
    forecast_hourly_url: str | None = None  # None: this server's /gridpoints/ URL
    forecast: dict[str, Any] = field(default_factory=open_meteo_body)
    requests: list[str] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    hangups: list[float] = field(default_factory=list)  # time.monotonic() when a held client hung up
    stop: threading.Event = field(default_factory=threading.Event)
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
        if self.mode == "redirect":
            return 302, {"Location": self.redirect_to}, b""
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        if self.mode == "garbage":
            return 200, {}, b"<html>this is not json{"
        if self.mode == "deep":  # valid-looking JSON nested past Python's recursion limit
            return 200, {}, b"[" * 50_000
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
                    {"properties": {"forecastHourly": self.forecast_hourly_url
                                    or f"{self.base}/gridpoints/X/1,2/hourly"}}
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
        state.queries.append(parse_qs(parsed.query))
        state.headers.append(dict(self.headers.items()))
        try:
            if state.mode in HOSTILE_MODES:
                self.hostile(state.mode)
                return
            status, headers, body = state.answer(parsed.path, parse_qs(parsed.query))
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

    def hung_up(self, seconds: float) -> bool:
        """Wait up to `seconds` for the client to close its end; record and return True if it did."""
        readable, _, _ = select.select([self.connection], [], [], seconds)
        if not readable:
            return False
        try:
            data = self.connection.recv(1)
        except OSError:
            data = b""
        if data:
            return False
        self.server.state.hangups.append(time.monotonic())
        return True

    def hold(self) -> None:
        """Send nothing more until the client hangs up (or the server stops)."""
        while not self.server.state.stop.is_set() and not self.hung_up(0.05):
            pass

    def trickle(self, data: bytes) -> None:
        """Send `data` one byte per `trickle_interval`, forever (cycling), until the client hangs up."""
        state, i = self.server.state, 0
        while not state.stop.is_set() and not self.hung_up(state.trickle_interval):
            self.wfile.write(data[i % len(data):i % len(data) + 1])
            i += 1

    def json_headers(self, extra: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()

    def huge(self, chunked: bool) -> None:
        state, piece = self.server.state, b'{"pad": "' + b"x" * 65536
        if chunked:
            self.protocol_version = "HTTP/1.1"
            self.json_headers({"Transfer-Encoding": "chunked", "Connection": "close"})
        else:  # HTTP/1.0 without Content-Length: the body ends when the connection closes
            self.json_headers({})
        sent = 0
        while sent < state.huge_bytes and not state.stop.is_set():
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            sent += len(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


    def hostile(self, mode: str) -> None:
        if mode == "trickle":  # headers, then one byte of body per second, forever
            self.json_headers({})
            self.trickle(b" ")
        elif mode == "trickle-status":  # not even the status line completes
            self.trickle(b"HTTP/1.0 200 OK")
        elif mode == "headers-hang":  # promise 100 bytes, send none
            self.json_headers({"Content-Length": "100"})
            self.hold()
        elif mode == "no-answer":  # the request was read; no byte of answer ever comes
            self.hold()
        elif mode == "huge-declared":
            self.json_headers({"Content-Length": "2000000"})
            self.hold()
        else:
            self.huge(chunked=mode == "huge-chunked")


HOSTILE_MODES = ("trickle", "trickle-status", "headers-hang", "no-answer", "huge-declared", "huge-chunked",
                 "huge-close")


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
        state.stop.set()  # lets held (hostile) handlers end
        httpd.shutdown()
        httpd.server_close()
