"""systemd's service notification protocol (sd_notify(3)) for the daemon's `Type=notify` unit.

The protocol is one datagram of newline-separated `KEY=value` assignments (READY=1, STATUS=...,
STOPPING=1) sent to the AF_UNIX socket named in $NOTIFY_SOCKET; a name starting with '@' is in Linux's
abstract namespace. systemd documents it as a stable interface to be reimplemented without libsystemd
(sd_notify(3), "Notes", carries a standalone version), so this is those few lines in the standard
library: the binding systemd ships (systemd-python) needs libsystemd headers and a compiler to install,
and the pure-Python `sdnotify` package has had no release since 2017.

Without $NOTIFY_SOCKET (a terminal, cron, another OS) every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket

from ai_wallpaper.core import log

logger = log.get(__name__)


class Notifier:
    """Sends notifications to the service manager that started this process, if any."""

    def __init__(self, address: str | None = None) -> None:
        # Taken out of the environment (sd_notify's unset_environment): the generation child and the
        # wallpaper setters must not speak for the daemon.
        address = os.environ.pop("NOTIFY_SOCKET", None) if address is None else address
        self._address: str | None = None
        self._socket: socket.socket | None = None
        self._last_status: str | None = None
        family = getattr(socket, "AF_UNIX", None)
        if not address or family is None or address[0] not in "/@":
            return
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(family, socket.SOCK_DGRAM | getattr(socket, "SOCK_CLOEXEC", 0))

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` lines in one datagram; False if there is no manager or it did not take it."""
        if self._socket is None or self._address is None:
            return False
        try:
            self._socket.sendto("\n".join(assignments).encode("utf-8"), self._address)
        except OSError as exc:  # the manager went away: the daemon goes on without it
            logger.debug("sd_notify failed", error=str(exc))
            return False
        return True

    def ready(self, status: str) -> bool:
        self._last_status = status
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        """STATUS=text, sent only when it changed (the daemon calls this every second)."""
        if text == self._last_status:
            return True
        self._last_status = text
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str) -> bool:
        self._last_status = status
        return self.notify("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None
