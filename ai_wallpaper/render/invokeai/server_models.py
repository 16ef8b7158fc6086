"""Which of the server's models a remote run uses: found through its model manager API by name (or
key), base and type, every missing one reported at once with what the server does have."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.render.invokeai.client import InvokeAIClient
from ai_wallpaper.render.invokeai.graphs import LoraRef
from ai_wallpaper.scene.plan import LoraChoice

IDENTIFIER_KEYS = ("key", "hash", "name", "base", "type")
MAIN, REFINER, UPSCALER = ("main", ("sdxl",)), ("main", ("sdxl-refiner",)), ("spandrel_image_to_image", None)


@dataclass(frozen=True)
class ServerModels:
    base: dict[str, Any]
    refiner: dict[str, Any] | None
    upscaler: dict[str, Any] | None
    loras: tuple[LoraRef, ...]

    def describe(self) -> dict[str, Any]:
        """run.json's record of what ran on the server."""
        found = {"base": self.base, "refiner": self.refiner, "upscaler": self.upscaler}
        out: dict[str, Any] = {role: _short(m) for role, m in found.items() if m is not None}
        out["loras"] = [{**_short(lora.model), "weight": lora.weight} for lora in self.loras]
        return out


def _short(model: dict[str, Any]) -> dict[str, Any]:
    return {k: model.get(k) for k in ("name", "key", "hash", "base")}


def server_name(spec: str) -> str:
    """models.* as the server names it: a hub id's repo name, a folder's name, a file's stem."""
    last = PureWindowsPath(PurePosixPath(spec.rstrip("/\\")).name).name
    for suffix in (".safetensors", ".ckpt", ".pth", ".pt", ".bin", ".gguf"):
        if last.lower().endswith(suffix):
            return last[: -len(suffix)]
    return last


def wanted_names(settings: Settings) -> dict[str, tuple[str, str] | None]:
    """role -> (the settings key that names it, the name to look for); None where the role is off."""
    named, models = settings.invokeai.models, settings.models
    refiner = named.refiner or (server_name(models.refiner) if models.refiner else None)
    return {
        "base": ("invokeai.models.base", named.base or server_name(models.base)),
        "refiner": ("invokeai.models.refiner", refiner) if refiner else None,
        "upscaler": ("invokeai.models.upscaler", named.upscaler or server_name(models.upscaler)),
    }


def resolve(client: InvokeAIClient, settings: Settings, stack: tuple[LoraChoice, ...]) -> ServerModels:
    """The server's models for this run; a ModelError listing every one that is missing."""
    found, problems = find_models(client, settings, stack)
    if found is None:
        raise ModelError(f"models missing on the InvokeAI server {client.url}:\n" + "\n".join(
            f"  - {p}" for p in problems), hint="install them there (its Model Manager, or POST "
            "/api/v2/models/install) or name the server's models in invokeai.models")
    return found


def find_models(client: InvokeAIClient, settings: Settings,
                stack: tuple[LoraChoice, ...]) -> tuple[ServerModels | None, list[str]]:
    """(the models, []) or (None, every problem): what `resolve` raises and `doctor` lists."""
    problems: list[str] = []
    wanted = wanted_names(settings)
    catalogue = {kind: client.models(kind) for kind in ("main", "spandrel_image_to_image", "lora")}

    def find(role: str, kind: tuple[str, tuple[str, ...] | None]) -> dict[str, Any] | None:
        entry = wanted[role]
        if entry is None:
            return None
        key, name = entry
        found = _match(catalogue[kind[0]], name, kind[1])
        if len(found) == 1:
            return identifier(found[0])
        choices = sorted({r["name"] for r in catalogue[kind[0]] if kind[1] is None or r["base"] in kind[1]})
        what = f"{'/'.join(kind[1] or ('any',))} {kind[0]}"
        if not found:
            problems.append(f"{key}: the server has no {what} model named {name!r}"
                            f" (it has: {', '.join(choices[:12]) or 'none'})")
        else:
            problems.append(f"{key}: {len(found)} {what} models are named {name!r}; use one's key: "
                            + ", ".join(r["key"] for r in found))
        return None

    base, refiner, upscaler = find("base", MAIN), find("refiner", REFINER), find("upscaler", UPSCALER)
    loras = tuple(lora_on_server(catalogue["lora"], c.name, c.file, c.sha256, c.weight, problems) for c in stack)
    if problems or base is None:
        return None, problems
    return ServerModels(base, refiner, upscaler, tuple(lora for lora in loras if lora is not None)), []


def _match(records: list[dict[str, Any]], wanted: str, bases: tuple[str, ...] | None) -> list[dict[str, Any]]:
    fitting = [r for r in records if bases is None or r["base"] in bases]
    by_key = [r for r in fitting if r["key"] == wanted]
    return by_key or [r for r in fitting if r["name"].casefold() == wanted.casefold()]


def lora_on_server(records: list[dict[str, Any]], name: str, file: str, sha256: str | None, weight: float,
                   problems: list[str]) -> LoraRef | None:
    """A library LoRA on the server: the same file by hash when the server hashes with sha256 (InvokeAI's
    default is blake3, which we do not compute), else by the library's key or the file's name."""
    sdxl = [r for r in records if r["base"] == "sdxl"]
    found = [r for r in sdxl if sha256 and str(r.get("hash", "")).lower() == f"sha256:{sha256}".lower()]
    if not found:
        names = {name.casefold(), server_name(file).casefold()}
        found = [r for r in sdxl if r["name"].casefold() in names]
    if len(found) == 1:
        return LoraRef(identifier(found[0]), weight)
    if not found:
        problems.append(f"LoRA {name!r}: the server has no SDXL LoRA named {name!r} or {server_name(file)!r} "
                        f"(it has: {', '.join(sorted(r['name'] for r in sdxl)[:12]) or 'none'})")
    else:
        problems.append(f"LoRA {name!r}: {len(found)} server LoRAs match ({', '.join(r['key'] for r in found)}); "
                        "rename all but one on the server")
    return None


def identifier(record: dict[str, Any]) -> dict[str, Any]:
    """The server's ModelIdentifierField for a model record."""
    return {k: record.get(k) or "" for k in IDENTIFIER_KEYS}
