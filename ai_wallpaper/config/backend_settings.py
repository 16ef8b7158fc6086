"""Where the diffusion and upscale stages run: `render:` and `invokeai:` of settings.yaml.

Part of the settings schema (config/settings.py assembles the whole file from these sections). The
server's URL, token and timeouts are connection details, never part of a run's recipe: `--resume`
takes them from today's config (config/settings.py RECIPE lists what a run record may give back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from ai_wallpaper.config.schema import KeyPath, option
from ai_wallpaper.config.urls import is_loopback_host

Check = list[tuple[KeyPath, str] | tuple[KeyPath, str, str]]
Backend = Literal["local", "invokeai"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_QUEUE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


@dataclass(frozen=True)
class RenderSettings:
    backend: Backend = option(
        "local", "Where txt2img, the refiner, the upscaler and the 8K enhancement run: local (this machine)\n"
        "or invokeai (an InvokeAI server, see invokeai:). Downsampling and setting the wallpaper always\n"
        "run here. --backend overrides it for one run.")


@dataclass(frozen=True)
class InvokeAIModels:
    base: str | None = option(None, "The SDXL main model's name (or key) on the server; null = the last part\n"
                              "of models.base (a hub id's repo name, a folder's or file's name).")
    refiner: str | None = option(None, "The SDXL refiner's name on the server; null = from models.refiner\n"
                                 "(no refiner when models.refiner is null).")
    upscaler: str | None = option(None, "The spandrel upscaler's name on the server; null = from models.upscaler.")


@dataclass(frozen=True)
class InvokeAISettings:
    url: str = option(
        "http://127.0.0.1:9090", "The InvokeAI server (its web address, no path). Plain http is fine on this\n"
        "machine or through an SSH tunnel; to another host it is allowed with a warning (use https or a\n"
        "tunnel: prompts and images cross the network).")
    token_env: str = option("AI_WALLPAPER_INVOKEAI_TOKEN",
                            "Environment variable holding the server's access token (sent as a Bearer token).")
    token_file: str | None = option(
        None, "A file holding the access token instead (must be private: mode 0600). The token is never\n"
        "written to run.json or the logs.")
    queue_id: str = option("default", "The server's session queue to use.")
    connect_timeout: float = option(5.0, "Seconds to connect to the server.", min=0.1, max=120)
    read_timeout: float = option(120.0, "Seconds to wait for one answer (an image download included).",
                                 min=1, max=3600)
    stage_timeout_minutes: int = option(60, "Give up on a stage the server has not finished after this long\n"
                                        "(the queue item is cancelled).", min=1, max=1440)
    poll_seconds: float = option(0.5, "How often to ask the server for progress.", min=0.05, max=60)
    enhance_fallback: Literal["skip", "local"] = option(
        "skip", "When the server has no tiled multi-diffusion node for the 8K enhancement: skip it (recorded\n"
        "in run.json) or run it on this machine (needs models.base here).")
    models: InvokeAIModels = option(factory=InvokeAIModels, doc="The server's names for the models.")

    def check(self) -> Check:
        problems: Check = []
        if problem := invokeai_url_problem(self.url):
            problems.append((("url",), f"{redacted(self.url)!r} {problem}",
                             "e.g. http://127.0.0.1:9090 or https://gpu-box:9090"))
        if not _ENV_NAME.match(self.token_env):
            problems.append((("token_env",), f"{self.token_env!r} is not an environment variable name"))
        if not _QUEUE_ID.match(self.queue_id):
            problems.append((("queue_id",), f"{self.queue_id!r} must be 1-64 letters, digits, '_', '.' or '-'"))
        return problems


def invokeai_url_problem(url: str) -> str | None:
    """Why `url` cannot name an InvokeAI server, or None. Credentials in the URL are refused: they
    would land in run.json and the logs (use token_env / token_file)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user or password (put the token in token_env or token_file)"
    if parts.query or parts.fragment or parts.path.strip("/"):
        return "must be the server's address only, without a path, query or fragment"
    return None


def redacted(url: str) -> str:
    """`url` as a message may show it: a user or password in it (refused anyway) becomes '***', so a
    config error logged by the daemon never carries a credential into the journal."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{tail}"


def is_private_channel(url: str) -> bool:
    """https, or plain http to this machine: nothing readable crosses a network."""
    parts = urlsplit(url)
    return parts.scheme.lower() == "https" or is_loopback_host(parts.hostname or "")
