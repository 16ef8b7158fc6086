"""Model fingerprints for run.json: where a model came from and a hash of it, with the hash's scope.

SDXL files are ~7 GB, so file hashes are cached by (path, size, mtime) in the cache dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from ai_wallpaper.catalog.model_sources import ModelSource
from ai_wallpaper.core.atomic import write_json
from ai_wallpaper.core.paths import Paths


def file_sha256(path: Path, cache_dir: Path | None = None) -> str:
    """sha256 of a file, cached in <cache_dir>/hashes.json by (path, size, mtime): SDXL files are 7 GB."""
    path = Path(path).resolve()
    stat = path.stat()
    cache_file = (cache_dir or Paths.from_env().cache_dir) / "hashes.json"
    key = str(path)
    cache: dict[str, Any] = {}
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, dict) and (entry.get("size"), entry.get("mtime_ns")) == (stat.st_size,
                                                                                 stat.st_mtime_ns):
        return str(entry["sha256"])
    with path.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    cache[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
    with contextlib.suppress(OSError):  # a read-only cache must not fail a run; the hash is still right
        write_json(cache_file, cache)
    return digest


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
    else:
        info["sha256"] = None
        info["hash_scope"] = "none (not on disk yet)"
    return info
