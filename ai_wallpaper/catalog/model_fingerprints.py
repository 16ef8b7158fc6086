"""Model fingerprints for run.json: where a model came from and a hash of it, with the hash's scope.

SDXL files are ~7 GB, so file hashes are cached by (path, size, mtime) in the cache dir; LoRA file
checks (scene/lora_files.py) use the same cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ai_wallpaper.catalog.model_layout import vae_weight_files
from ai_wallpaper.catalog.model_sources import ModelSource
from ai_wallpaper.core import log
from ai_wallpaper.core.atomic import write_json
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.core.untrusted_input import loads_json

logger = log.get(__name__)

HASH_CACHE_NAME = "hashes.json"
# Thousands of entries fit in well under 1 MiB; anything far larger is not a file this code wrote.
_MAX_CACHE_BYTES = 16 * 1024 * 1024


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a file, cached in <cache_dir>/hashes.json (default: the user's cache dir).

    The one hash cache, for models and LoRAs alike: SDXL files are 7 GB and a LoRA is hashed on
    every plan. An entry is reused only while the file's (size, mtime) is what it was when hashed.
    The cache file is never trusted beyond that: one that is unreadable, oversized or of the wrong
    shape, or an entry without a hash string, counts as no entry and the file is read again.
    """
    path = Path(path).resolve()
    stat = path.stat()
    cache_file = (cache_dir or Paths.from_env().cache_dir) / HASH_CACHE_NAME
    key, stamp = str(path), (stat.st_size, stat.st_mtime_ns)
    cache = _read_cache(cache_file)
    entry = cache.get(key)
    if (isinstance(entry, dict) and (entry.get("size"), entry.get("mtime_ns")) == stamp
            and isinstance(entry.get("sha256"), str) and entry["sha256"]):
        return str(entry["sha256"])
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    try:
        write_json(cache_file, cache)
    except OSError as err:  # a cache only saves time: a read-only cache dir must not fail a run
        logger.debug("hash cache not written", file=str(cache_file), error=str(err))
    return digest


def _read_cache(cache_file: Path) -> dict[str, Any]:
    try:
        if cache_file.stat().st_size > _MAX_CACHE_BYTES:
            return {}
        data = loads_json(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable, not UTF-8 or not JSON
        return {}
    return data if isinstance(data, dict) else {}


def dir_manifest_sha256(directory: Path) -> str:
    """sha256 over the sorted list of (relative path, size) of every file: cheap, not a content hash."""
    lines = []
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        lines.append(f"{file.relative_to(directory).as_posix()}\t{file.stat().st_size}")
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def describe_model(source: ModelSource, cache_dir: Path | None = None) -> dict[str, Any]:
    """What run.json records about a model: where it came from and a fingerprint (with its scope)."""
    info: dict[str, Any] = {
        "role": source.role, "spec": source.spec, "kind": source.kind, "location": source.location,
        "label": source.label, "self_test": source.self_test,
    }
    if source.hub_id:
        info["hub_id"] = source.hub_id
        info["revision"] = source.revision
    if source.config:
        info["config"] = source.config
        info["config_origin"] = source.config_origin
    path = source.path
    if path is not None and path.is_file():
        info["sha256"] = file_sha256(path, cache_dir)
        info["hash_scope"] = "file contents"
    elif path is not None and path.is_dir():
        info["sha256"] = dir_manifest_sha256(path)
        info["hash_scope"] = "file list and sizes (not contents)"
        index = path / "model_index.json"
        if index.is_file():
            info["model_index_sha256"] = file_sha256(index, cache_dir)
        if source.role == "vae":  # one small component: its weights are hashed too (two VAEs share sizes)
            info["weights_sha256"] = {f.name: file_sha256(f, cache_dir) for f in vae_weight_files(path)}
    else:
        info["sha256"] = None
        info["hash_scope"] = "none (not on disk yet)"
    return info
