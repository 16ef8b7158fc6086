"""A small client for InvokeAI's REST API (the endpoints InvokeAI 6 documents at /docs).

Plain `requests` on purpose: the few calls the backend needs are stable REST endpoints, and every
answer is checked here, so a server that is down, slow, restarting or answering garbage becomes one
clear RunError (exit 5) naming the server, never a traceback. The token travels only in the
Authorization header; no message, log line or record carries it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ai_wallpaper.config.backend_settings import InvokeAISettings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ConfigError, RunError
from ai_wallpaper.core.untrusted_input import loads_json

logger = log.get(__name__)
JSON_LIMIT = 64 * 2**20  # a queue item with its whole session is well under 1 MiB
IMAGE_LIMIT = 1024 * 2**20  # an 8K PNG at low compression is ~100 MiB
CHUNK = 1 << 16
HINT = "check that invokeai-web runs there and that invokeai.url is right (`ai-wallpaper doctor` tests it)"


def read_token(cfg: InvokeAISettings, config_dir: Path) -> str | None:
    """The access token: token_file (must be private) if set, else the token_env variable, else none."""
    if cfg.token_file:
        file = Path(os.path.expanduser(cfg.token_file))
        file = file if file.is_absolute() else config_dir / file
        try:
            info = file.stat()
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(f"invokeai.token_file: {file} can be read by others (mode "
                                  f"{stat.S_IMODE(info.st_mode):04o})", hint=f"chmod 600 {file}")
            token = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"invokeai.token_file: cannot read {file}: {exc.strerror}") from exc
        if not token:
            raise ConfigError(f"invokeai.token_file: {file} is empty")
        return token
    return os.environ.get(cfg.token_env) or None


@dataclass(frozen=True)
class Enqueued:
    item_id: int
    batch_id: str


class InvokeAIClient:
    def __init__(self, cfg: InvokeAISettings, token: str | None) -> None:
        self.url = cfg.url.rstrip("/")
        self.queue = cfg.queue_id
        self.timeout = (cfg.connect_timeout, cfg.read_timeout)
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment sees the token
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    # --- transport ----------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, limit: int = JSON_LIMIT, **kwargs: Any) -> tuple[int, bytes]:
        """(status, body). The whole answer must arrive within read_timeout and stay under `limit`
        bytes: a server that trickles or floods fails the run instead of hanging or filling memory."""
        where = f"InvokeAI server {self.url}"
        late = threading.Event()
        try:
            with self.session.request(method, self.url + path, timeout=self.timeout, allow_redirects=False,
                                      stream=True, **kwargs) as response:
                # A reader blocked in a trickled body never sees a per-read timeout: a timer closes it.
                watchdog = threading.Timer(self.timeout[1], _abort, (response, late))
                watchdog.start()
                try:
                    body = self._read(response, limit, f"{where}: {method} {path}")
                    if late.is_set():  # closed under the reader: what came is not the whole answer
                        raise requests.exceptions.ReadTimeout("answer too slow")
                except (requests.exceptions.RequestException, OSError, AttributeError, ValueError) as exc:
                    if late.is_set():
                        raise requests.exceptions.ReadTimeout("answer too slow") from exc
                    raise
                finally:
                    watchdog.cancel()
                status = response.status_code
        except requests.exceptions.Timeout as exc:
            raise RunError(f"{where} did not answer {method} {path} within {self.timeout[1]:g} s", hint=HINT) from exc
        except requests.exceptions.ConnectionError as exc:
            raise RunError(f"{where} is not reachable ({_reason(exc)})", hint=HINT) from exc
        except requests.exceptions.RequestException as exc:
            raise RunError(f"{where}: {method} {path} failed ({_reason(exc)})", hint=HINT) from exc
        if status in (401, 403):
            raise RunError(f"{where} refused the request ({status}): the access token is missing or wrong",
                           hint="set the token in invokeai.token_env or invokeai.token_file")
        if status >= 300:
            raise RunError(f"{where}: {method} {path} answered HTTP {status}: {_detail(bytes(body))}", hint=HINT)
        return status, body

    @staticmethod
    def _read(response: requests.Response, limit: int, what: str) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(CHUNK):
            body += chunk
            if len(body) > limit:
                raise RunError(f"{what} answered more than {limit // 2**20} MiB",
                               hint="is invokeai.url really an InvokeAI server?")
        return bytes(body)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        _, body = self._send(method, path, **kwargs)
        try:
            return loads_json(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunError(f"InvokeAI server {self.url}: {method} {path} answered something that is not JSON "
                           f"({body[:80]!r})", hint="is invokeai.url really an InvokeAI server?") from exc

    def _expect(self, data: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise RunError(f"InvokeAI server {self.url} answered {what} without a valid {key!r} "
                           f"(got {str(data)[:120]!r})", hint="is invokeai.url really an InvokeAI server?")
        return value

    # --- the API --------------------------------------------------------------------------------
    def version(self) -> str:
        return str(self._expect(self._json("GET", "/api/v1/app/version"), "version", str, "its version"))

    def models(self, model_type: str) -> list[dict[str, Any]]:
        data = self._json("GET", "/api/v2/models/", params={"model_type": model_type})
        records = self._expect(data, "models", list, "the model list")
        return [r for r in records if isinstance(r, dict) and all(isinstance(r.get(k), str)
                                                                  for k in ("key", "name", "base", "type"))]

    def invocation_types(self) -> set[str]:
        """The node types this server can run (from its OpenAPI schema)."""
        schemas = self._expect(self._json("GET", "/openapi.json"), "components", dict, "its API schema")
        found = set()
        for schema in (schemas.get("schemas") or {}).values():
            if isinstance(schema, dict) and schema.get("class") == "invocation":
                kind = (schema.get("properties") or {}).get("type")
                if isinstance(kind, dict) and isinstance(kind.get("default"), str):
                    found.add(kind["default"])
        return found

    def upload_image(self, png: bytes, filename: str) -> str:
        data = self._json("POST", "/api/v1/images/upload", params={"image_category": "general",
                                                                   "is_intermediate": "true"},
                          files={"file": (filename, png, "image/png")})
        return str(self._expect(data, "image_name", str, "the upload"))

    def enqueue(self, graph: dict[str, Any]) -> Enqueued:
        body = {"batch": {"graph": graph, "runs": 1, "origin": "ai-wallpaper"}, "prepend": False}
        data = self._json("POST", f"/api/v1/queue/{self.queue}/enqueue_batch", json=body)
        ids = self._expect(data, "item_ids", list, "the enqueue")
        batch = self._expect(self._expect(data, "batch", dict, "the enqueue"), "batch_id", str, "the enqueue")
        if len(ids) != 1 or not isinstance(ids[0], int):
            raise RunError(f"InvokeAI server {self.url} queued {ids!r} for one graph", hint=HINT)
        return Enqueued(ids[0], batch)

    def item(self, item_id: int) -> dict[str, Any]:
        data = self._json("GET", f"/api/v1/queue/{self.queue}/i/{item_id}")
        self._expect(data, "status", str, f"queue item {item_id}")
        return dict(data)

    def cancel(self, item_id: int) -> None:
        self._send("PUT", f"/api/v1/queue/{self.queue}/i/{item_id}/cancel")

    def image(self, image_name: str) -> bytes:
        return self._send("GET", f"/api/v1/images/i/{image_name}/full", limit=IMAGE_LIMIT)[1]


def _abort(response: requests.Response, late: threading.Event) -> None:
    """Unblock a reader stuck in recv(): shutting the socket down wakes it, closing alone does not."""
    late.set()
    # The body's file object holds the connection (urllib3 has already let go of it); shutdown on a
    # duplicate descriptor acts on the shared socket.
    with contextlib.suppress(OSError, AttributeError, ValueError), \
            socket.fromfd(response.raw._fp.fp.fileno(), socket.AF_INET, socket.SOCK_STREAM) as dup:  # type: ignore[union-attr]
        dup.shutdown(socket.SHUT_RDWR)
    response.close()


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset",
                   "Remote end closed connection"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def _detail(body: bytes) -> str:
    try:
        detail = loads_json(body).get("detail")
    except (ValueError, AttributeError, UnicodeDecodeError):
        detail = None
    return str(detail or body[:300].decode("utf-8", "replace") or "no detail")[:300]
