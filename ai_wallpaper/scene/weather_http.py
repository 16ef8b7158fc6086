"""HTTP for the weather: GET a JSON document, https only, no redirects, size-capped, under one deadline.

- `Deadline` is one wall-clock budget shared by every request of a weather fetch (geocoding and
  forecast, or NWS points and forecastHourly). Each request runs in a daemon worker thread that the
  caller waits for only as long as the budget has left, so nothing (DNS, a stuck connect, a server
  that trickles one byte a second or hangs mid-answer) can hold a run longer than the deadline.
- On expiry the deadline shuts its sockets down, so the abandoned worker stops at once instead of
  lingering on a hostile connection; the worker also checks the deadline after every socket read.
- Only https URLs are requested (plain http only to a loopback host, which tests use), redirects
  are never followed, and a body larger than `MAX_BODY_BYTES` is refused, with or without a
  Content-Length.
Every problem is a `WeatherFailure`; `requests` is imported only when something is fetched.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ai_wallpaper.config.urls import url_problem
from ai_wallpaper.core import log
from ai_wallpaper.core.untrusted_input import loads_json

if TYPE_CHECKING:
    from requests.adapters import HTTPAdapter

    from ai_wallpaper.config.settings import WeatherSettings

logger = log.get(__name__)
MAX_BODY_BYTES = 1_000_000
READ_SIZE = 16384
USER_AGENT = "ai-wallpaper/0.1 (desktop wallpaper weather mood)"
_DEFAULT_PORTS = {"https": 443, "http": 80}
_worker = threading.local()  # .deadline: the Deadline of the request this worker thread runs


class WeatherFailure(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- URLs ----------------------------------------------------------------------------------------


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port filled in; None for a malformed URL."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        return None


# --- the deadline --------------------------------------------------------------------------------


class Deadline:
    """One wall-clock budget for several requests; `cancel()` aborts the one in flight."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expires = time.monotonic() + seconds
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []  # dups of the open connections' sockets

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def over(self) -> bool:
        return self.cancelled.is_set() or self.remaining() <= 0

    def failure(self, url: str) -> WeatherFailure:
        return WeatherFailure(f"timed out: no complete answer from {url} within the {self.seconds:g} s "
                              "deadline (weather.deadline_seconds)")

    def watch(self, sock: socket.socket) -> None:
        """Remember a new connection's socket (a dup: TLS wrapping detaches the original)."""
        dup = sock.dup()
        with self._lock:
            self._sockets.append(dup)
            late = self.cancelled.is_set()
        if late:  # the caller already gave up while this worker was still connecting
            self.cancel()

    def cancel(self) -> None:
        """Give up: shut the connections down so a worker blocked in a read returns now."""
        self.cancelled.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for dup in sockets:
            with contextlib.suppress(OSError):  # already closed by the peer
                dup.shutdown(socket.SHUT_RDWR)
            dup.close()

    def release(self) -> None:
        """The request is over: close the dups (the connection itself is closed by its owner)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for dup in sockets:
            dup.close()


# --- GET -----------------------------------------------------------------------------------------


def get_json(url: str, params: dict[str, Any] | None, settings: WeatherSettings, deadline: Deadline) -> Any:
    """GET `url` and parse its JSON body, within what is left of `deadline`."""
    problem = url_problem(url)
    if problem:
        raise WeatherFailure(f"refusing to request {url!r}: it {problem}")
    if deadline.over():
        raise deadline.failure(url)
    outcome: dict[str, Any] = {}

    def work() -> None:
        _worker.deadline = deadline
        try:
            outcome["body"] = _download(url, params, settings, deadline)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc
        finally:
            deadline.release()

    worker = threading.Thread(target=work, name="weather-http", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline.remaining()))
    if worker.is_alive():
        deadline.cancel()
        logger.warning("weather.deadline", url=url, seconds=deadline.seconds)
        raise deadline.failure(url)
    if "error" in outcome:
        raise outcome["error"]
    try:
        return loads_json(bytes(outcome["body"]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WeatherFailure(f"invalid JSON from {url}") from None


def _download(url: str, params: dict[str, Any] | None, settings: WeatherSettings, deadline: Deadline) -> bytes:
    import requests
    import urllib3

    left = max(0.01, deadline.remaining())
    timeout = (min(settings.connect_timeout, left), min(settings.read_timeout, left))
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json, application/geo+json",
               "Accept-Encoding": "identity"}
    try:
        with requests.Session() as session:
            adapter = _tracking_adapter()()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            with session.get(url, params=params, timeout=timeout, headers=headers, stream=True,
                             allow_redirects=False) as response:
                _check_status(url, response.status_code, response.headers)
                body = bytearray()
                while chunk := response.raw.read1(READ_SIZE, decode_content=True):  # one recv at most
                    body.extend(chunk)
                    if len(body) > MAX_BODY_BYTES:
                        raise WeatherFailure(f"response from {url} is larger than {MAX_BODY_BYTES} bytes")
                    if deadline.over():
                        raise deadline.failure(url)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if deadline.over():  # the socket timeouts are capped to the deadline: this is the deadline
            raise deadline.failure(url) from None
        if isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
            raise WeatherFailure(f"timed out talking to {url}") from None
        raise WeatherFailure(f"request to {url} failed: {type(exc).__name__}") from None
    if deadline.over():  # a cancelled connection reads as a (short) end of body
        raise deadline.failure(url)
    return bytes(body)


def _check_status(url: str, status: int, headers: Mapping[str, str]) -> None:
    if status == 429:
        raise WeatherFailure("rate limited (HTTP 429)", retry_after(headers.get("Retry-After")))
    if 300 <= status < 400:
        raise WeatherFailure(f"HTTP {status} redirect from {url} to {headers.get('Location')!r}: redirects "
                             "are not followed (configure the final https URL)")
    if status >= 400 or status < 200:
        raise WeatherFailure(f"HTTP {status} from {url}")
    declared = str(headers.get("Content-Length") or "").strip()
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise WeatherFailure(f"response from {url} is larger than {MAX_BODY_BYTES} bytes")


def retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (seconds or HTTP date); 10 minutes if absent or odd."""
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    return 600.0


@cache
def _tracking_adapter() -> type[HTTPAdapter]:
    """An HTTPAdapter whose new connections register their socket with the worker's Deadline."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def track(sock: socket.socket) -> socket.socket:
        deadline: Deadline | None = getattr(_worker, "deadline", None)
        if deadline is not None:
            deadline.watch(sock)
        return sock

    class TrackedHTTP(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return track(super()._new_conn())

    class TrackedHTTPS(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return track(super()._new_conn())

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = TrackedHTTP

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = TrackedHTTPS

    class TrackingAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}

    return TrackingAdapter
