"""Which CLIP tokenizer folders a base model setting means, found without torch or network.

The plan and `themes list` report each prompt's length in tokens (compel encodes long prompts in 77-token
windows, so the count says how many windows a prompt takes), so they must count with the tokenizer the
pipeline will load. That is why the folders come from `model_sources.resolve_source`, the
resolver `render/model_loading.py` loads models through: a relative name is looked up only under
<data>/models/ (never the current directory), a hub id only in the local Hugging Face cache, and a
single-file checkpoint's tokenizers come from the config folder diffusers will be given.
"""

from __future__ import annotations

from pathlib import Path

from ai_wallpaper.catalog.builtin import builtin_tokenizer_dir, is_builtin
from ai_wallpaper.catalog.model_sources import ModelSource, resolve_source
from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.paths import Paths

logger = log.get(__name__)

TOKENIZER_FOLDERS = ("tokenizer", "tokenizer_2")  # SDXL's two text encoders, as diffusers names them


def has_bpe_files(directory: Path) -> bool:
    """Hub SDXL repos ship vocab.json + merges.txt; transformers 5 saves only tokenizer.json."""
    return (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file()


def is_tokenizer_dir(directory: Path) -> bool:
    return has_bpe_files(directory) or (directory / "tokenizer.json").is_file()


def tokenizer_dirs_for(base_spec: str, models: ModelSettings, paths: Paths) -> list[Path]:
    """The base model's tokenizer folders; [] when the model cannot be resolved or is not on disk yet
    (the planner then counts approximately and says so; loading the model reports the real problem)."""
    try:
        source = resolve_source(base_spec, "base", models, paths)
    except ModelError as err:
        logger.info("tokenizers.unresolved", spec=base_spec, reason=err.message)
        return []
    try:
        return source_tokenizer_dirs(source, paths)
    except OSError as err:  # the built-in tokenizer could not be written (read-only or odd cache dir)
        logger.warning("tokenizers.unavailable", spec=base_spec, error=str(err))
        return []


def source_tokenizer_dirs(source: ModelSource, paths: Paths) -> list[Path]:
    """The tokenizer folders diffusers will read for a resolved SDXL source."""
    if source.kind == "builtin":
        return [builtin_tokenizer_dir(paths.builtin_models_dir)]
    if source.kind != "file":
        root = source.path  # a local folder or a cached hub snapshot; None while it is still to download
        return _tokenizer_subdirs(root) if root is not None else []
    config = source.config  # single file: its tokenizers live in the config folder
    if is_builtin(config):
        return [builtin_tokenizer_dir(paths.builtin_models_dir)]
    if config is not None and Path(config).is_absolute():
        return _tokenizer_subdirs(Path(config))
    return []  # a hub id whose configs are still to download


def _tokenizer_subdirs(root: Path) -> list[Path]:
    return [root / name for name in TOKENIZER_FOLDERS if is_tokenizer_dir(root / name)]
