"""The local Hugging Face cache: the one place a hub id is looked up on disk (never the network).

Both the pipeline's model resolver and the planner's token counting go through here (via
`model_sources.resolve_source`), so a hub id means the same snapshot to both. huggingface_hub's own
lookup is used rather than a copy of its rules (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, refs/main),
and it is imported only when a hub id is looked up: `plan` with a local model never pays for it.
"""

from __future__ import annotations

from pathlib import Path


def hub_snapshot(repo_id: str, marker: str = "model_index.json") -> tuple[Path, str] | None:
    """(snapshot dir, commit) of a model repo in the local Hugging Face cache, or None. No network.

    A snapshot counts only if it has `marker`: model_index.json for a diffusers pipeline, config.json
    for a single component (a VAE).
    """
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, marker)
    except ValueError:  # not a valid repo id
        return None
    if not isinstance(found, str):  # None (unknown) or the _CACHED_NO_EXIST marker
        return None
    snapshot = Path(found).parent
    return snapshot, snapshot.name


def hub_cache_dir() -> str:
    """Where the cache is, for messages (read at call time: tests and users may repoint it)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
