"""Which URLs the program may request: a rule of the settings schema (weather endpoints), used by
config validation and by scene/weather_http.py before every request."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address in ipaddress.ip_network("127.0.0.0/8") or address == ipaddress.ip_address("::1")


def url_problem(url: str) -> str | None:
    """Why `url` must not be requested, or None: https only; plain http only to a loopback host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not parts.hostname:
        return "must be an https:// URL with a host"
    if scheme == "http" and not is_loopback_host(parts.hostname):
        return "must use https (plain http is allowed only to a loopback host: 127.0.0.0/8, ::1, localhost)"
    return None
