"""Where each model comes from, decided without importing torch (`plan` and `config validate` use it).

A model setting (`models.base`, `models.refiner`, `models.upscaler`, `models.vae`) is one of:
- `builtin:<name>`   the offline self-test models of `ai_wallpaper.catalog.builtin` (no built-in VAE);
- a local diffusers directory (has `model_index.json`; a VAE folder has an AutoencoderKL `config.json`);
- a single checkpoint file (.safetensors/.ckpt for SDXL; .pth/.safetensors/.pt/.ckpt for the upscaler;
  .safetensors/.ckpt/.pt/.bin/.pth for a VAE);
- a hub id `org/name`, used only from the local Hugging Face cache unless `models.allow_download`.

Anything not found raises ONE `ModelError` naming the setting, what was tried and how to fix it. File
existence is checked here, before diffusers runs, because a missing path otherwise surfaces as a
misleading hub error. Fingerprints for run.json live in model_fingerprints.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ai_wallpaper.catalog.builtin import (
    BUILTIN_PREFIX,
    SELF_TEST_LABEL,
    builtin_sdxl_path,
    builtin_upscaler_path,
    is_builtin,
)
from ai_wallpaper.catalog.hf_cache import hub_cache_dir, hub_snapshot
from ai_wallpaper.catalog.model_files import refuse_executable
from ai_wallpaper.catalog.model_layout import (
    VAE_FILE_SUFFIXES,
    VAE_HINT,
    Role,
    check_checkpoint_keys,
    check_role_shape,
    check_vae_dir,
    check_vae_file,
    looks_like_builtin,
    safetensors_shapes,
    vae_weight_files,
)
from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.core.untrusted_input import loads_json

SourceKind = Literal["builtin", "dir", "file", "hub"]

SDXL_FILE_SUFFIXES = (".safetensors", ".ckpt")
UPSCALER_FILE_SUFFIXES = (".pth", ".safetensors", ".pt", ".ckpt")
# Used for a single-file checkpoint's configs when models.<role>_config is unset and they are cached.
DEFAULT_CONFIG_REPOS = {
    "base": "stabilityai/stable-diffusion-xl-base-1.0",
    "refiner": "stabilityai/stable-diffusion-xl-refiner-1.0",
}
_BUILTIN_FOR_ROLE = {"base": "tiny", "refiner": "tiny-refiner", "upscaler": "tiny"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_UPSCALER_HINT = (
    "download RealESRGAN_x4plus.pth (https://github.com/xinntao/Real-ESRGAN/releases) into {models_dir}/, "
    "or set models.upscaler to the path of any spandrel-supported .pth/.safetensors upscaler "
    "(Real-ESRGAN, 4x-UltraSharp, SwinIR, HAT...); 'builtin:tiny' runs an offline self-test"
)
_SDXL_HINT = (
    "set {setting} to a local diffusers directory, a .safetensors/.ckpt checkpoint, a hub id that is "
    "already in the Hugging Face cache (or set models.allow_download: true), or 'builtin:{builtin}' "
    "for an offline self-test"
)


@dataclass(frozen=True)
class ModelSource:
    """A resolved model setting. `location` is an absolute path, or the hub id when it will download."""

    role: Role
    spec: str
    kind: SourceKind
    location: str
    label: str
    setting: str  # the settings key that named it, e.g. "models.base"
    hub_id: str | None = None
    revision: str | None = None  # hub snapshot commit when loaded from the cache
    config: str | None = None  # single-file SDXL: local diffusers config dir, a hub id, or "builtin:<name>"
    config_origin: str | None = None  # which setting or fallback chose `config`
    builtin_name: str | None = None
    self_test: bool = False

    @property
    def path(self) -> Path | None:
        return None if self.kind == "hub" and self.revision is None else Path(self.location)


def resolve_source(spec: str, role: Role, models: ModelSettings, paths: Paths) -> ModelSource:
    setting = f"models.{role}"
    spec = (spec or "").strip()
    if not spec:
        raise ModelError(f"{setting} is empty", hint=_hint(role, setting, paths))
    if is_builtin(spec):
        return _builtin_source(spec, role, setting, paths)

    tried: list[str] = []
    for candidate in _local_candidates(spec, paths):
        tried.append(str(candidate))
        if candidate.is_dir():
            return _dir_source(spec, role, setting, candidate.resolve())
        if candidate.is_file():
            return _file_source(spec, role, setting, candidate.resolve(), models, paths)

    if role != "upscaler" and _HUB_ID.match(spec) and not spec.lower().endswith(VAE_FILE_SUFFIXES):
        return _hub_source(spec, role, setting, models, tried)
    raise ModelError(
        f"{setting}: {spec!r} was not found (tried: {', '.join(tried)})",
        hint=_hint(role, setting, paths),
    )


def _hint(role: Role, setting: str, paths: Paths) -> str:
    if role == "upscaler":
        return _UPSCALER_HINT.format(models_dir=paths.models_dir)
    if role == "vae":
        return VAE_HINT
    return _SDXL_HINT.format(setting=setting, builtin=_BUILTIN_FOR_ROLE[role])


def _local_candidates(spec: str, paths: Paths) -> list[Path]:
    """Absolute paths as given; relative ones only under the data dir's models/. Never the current
    directory: a daemon's cwd is arbitrary, and a file there must not shadow a model name (the
    command line turns an explicit ./path into an absolute one itself)."""
    path = Path(spec).expanduser()
    if path.is_absolute():
        return [path]
    return [paths.models_dir / path]


def builtin_location(role: Role, paths: Paths) -> Path:
    """Where ensure_builtin_* puts the built-in model (mirrors builtin.py's naming)."""
    cache = paths.builtin_models_dir
    if role == "upscaler":
        return builtin_upscaler_path(cache)
    return builtin_sdxl_path(cache, _BUILTIN_FOR_ROLE[role])


def _builtin_source(spec: str, role: Role, setting: str, paths: Paths) -> ModelSource:
    name = spec[len(BUILTIN_PREFIX):]
    if role == "vae":
        raise ModelError(f"{setting}: there is no built-in VAE ({spec!r})", hint=VAE_HINT)
    expected = _BUILTIN_FOR_ROLE[role]
    if name != expected:
        wrong = {"tiny": "base", "tiny-refiner": "refiner"}.get(name)
        why = f"'builtin:{name}' is the built-in {wrong} model" if wrong else f"no built-in model {name!r}"
        raise ModelError(f"{setting}: {why}; the built-in {role} model is 'builtin:{expected}'",
                         hint=f"set {setting}: builtin:{expected}")
    return ModelSource(role=role, spec=spec, kind="builtin", location=str(builtin_location(role, paths)),
                       label=f"{spec}: {SELF_TEST_LABEL}", setting=setting, builtin_name=name,
                       self_test=True)


def _dir_source(spec: str, role: Role, setting: str, directory: Path) -> ModelSource:
    if role == "upscaler":
        raise ModelError(f"{setting}: {directory} is a directory; the upscaler is a single weights file",
                         hint="point models.upscaler at the .pth/.safetensors file inside it")
    if role == "vae":
        check_vae_dir(directory, setting)
        return ModelSource(role=role, spec=spec, kind="dir", location=str(directory),
                           label=f"VAE folder {directory}", setting=setting)
    check_diffusers_dir(directory, role, setting)
    return ModelSource(role=role, spec=spec, kind="dir", location=str(directory),
                       label=f"diffusers directory {directory}", setting=setting,
                       self_test=(directory / "SELF_TEST_MODEL.txt").exists())


def check_diffusers_dir(directory: Path, role: Role, setting: str) -> dict[str, Any]:
    """model_index.json must exist and describe an SDXL pipeline of the right kind (base vs refiner)."""
    index_file = directory / "model_index.json"
    if not index_file.is_file():
        raise ModelError(
            f"{setting}: {directory} is not a diffusers model directory (no model_index.json)",
            hint="give the directory that holds model_index.json, or the .safetensors checkpoint file itself")
    try:
        index = loads_json(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"{setting}: cannot read {index_file}: {err}") from err
    missing = [c for c in ("unet", "vae", "text_encoder_2", "scheduler")
               if not isinstance(index.get(c), list) or index[c][0] is None]
    if missing:
        raise ModelError(f"{setting}: {directory} is not an SDXL model "
                         f"(model_index.json lacks {', '.join(missing)})",
                         hint="SDXL base/refiner models have unet, vae, text_encoder_2 and scheduler")
    has_text_encoder = isinstance(index.get("text_encoder"), list) and index["text_encoder"][0] is not None
    check_role_shape(role, setting, str(directory), is_refiner=not has_text_encoder)
    for weights in sorted(directory.glob("*/*")):  # pickled component weights: refused now, not mid-run
        if weights.suffix in (".bin", ".pt", ".pth", ".ckpt") and weights.is_file():
            refuse_executable(weights, setting)
    return dict(index)


def _file_source(spec: str, role: Role, setting: str, file: Path, models: ModelSettings,
                 paths: Paths) -> ModelSource:
    suffix = file.suffix.lower()
    if role == "upscaler":
        if suffix not in UPSCALER_FILE_SUFFIXES:
            raise ModelError(f"{setting}: {file} has an unsupported extension {suffix!r}",
                             hint=f"use one of {', '.join(UPSCALER_FILE_SUFFIXES)}")
        refuse_executable(file, setting)
        return ModelSource(role=role, spec=spec, kind="file", location=str(file),
                           label=f"upscaler file {file}", setting=setting,
                           self_test=(file.parent / "SELF_TEST_MODEL.txt").exists())
    if role == "vae":
        check_vae_file(file, setting)
        return ModelSource(role=role, spec=spec, kind="file", location=str(file),
                           label=f"VAE file {file} (config: the model's own VAE config)", setting=setting)
    if suffix not in SDXL_FILE_SUFFIXES:
        raise ModelError(f"{setting}: {file} is not a .safetensors/.ckpt checkpoint",
                         hint="give a single-file SDXL checkpoint or a diffusers directory")
    refuse_executable(file, setting)
    shapes = safetensors_shapes(file) if suffix == ".safetensors" else None
    if shapes is not None:
        check_checkpoint_keys(shapes, role, setting, file)
    config, origin = _single_file_config(role, setting, file, shapes, models, paths)
    return ModelSource(role=role, spec=spec, kind="file", location=str(file),
                       label=f"single-file checkpoint {file} (configs: {origin})", setting=setting,
                       config=config, config_origin=origin,
                       self_test=(file.parent / "SELF_TEST_MODEL.txt").exists())


def _single_file_config(role: Role, setting: str, file: Path, shapes: dict[str, list[int]] | None,
                        models: ModelSettings, paths: Paths) -> tuple[str, str]:
    """The diffusers config layout for a single file. Without one diffusers guesses (wrongly for small
    models) and goes to the hub, so a config is always passed and always local unless downloads are on."""
    config_setting = f"models.{role}_config"
    explicit = models.base_config if role == "base" else models.refiner_config
    if explicit:
        local = Path(explicit).expanduser()
        if not local.is_absolute():  # like the models themselves: under models/, never the cwd
            local = paths.models_dir / local
        if local.is_dir():
            check_diffusers_dir(local.resolve(), role, config_setting)
            return str(local.resolve()), config_setting
        if _HUB_ID.match(explicit):
            snapshot = hub_snapshot(explicit)
            if snapshot is not None and (snapshot[0] / "unet" / "config.json").is_file():
                return str(snapshot[0]), f"{config_setting} (hub cache)"
            if models.allow_download:
                return explicit, f"{config_setting} (configs download from the hub)"
        raise ModelError(f"{config_setting}: {explicit!r} is not a local diffusers directory",
                         hint="point it at a directory with model_index.json and the component "
                              "config.json files (the weights are not needed)")
    default_repo = DEFAULT_CONFIG_REPOS[role]
    snapshot = hub_snapshot(default_repo)
    if snapshot is not None and (snapshot[0] / "unet" / "config.json").is_file():
        return str(snapshot[0]), f"{default_repo} configs from the hub cache"
    if shapes is not None and looks_like_builtin(shapes, role):
        return BUILTIN_PREFIX + _BUILTIN_FOR_ROLE[role], "built-in tiny layout"
    if models.allow_download:
        return default_repo, f"{default_repo} configs (download)"
    raise ModelError(
        f"{setting}: no diffusers config found for the single-file checkpoint {file}",
        hint=f"set {config_setting} to a local diffusers directory of the same architecture (e.g. a copy "
             f"of {default_repo} with its model_index.json, */config.json and tokenizer files; weights "
             "not needed), or set models.allow_download: true to fetch only the configs")


def _hub_source(spec: str, role: Role, setting: str, models: ModelSettings, tried: list[str]) -> ModelSource:
    snapshot = hub_snapshot(spec, "config.json" if role == "vae" else "model_index.json")
    if snapshot is not None and role == "vae":
        directory, revision = snapshot
        check_vae_dir(directory, setting, need_weights=not models.allow_download)
        if vae_weight_files(directory):
            return ModelSource(role=role, spec=spec, kind="hub", location=str(directory),
                               label=f"{spec} (hub cache, revision {revision[:12]})", setting=setting,
                               hub_id=spec, revision=revision)
    elif snapshot is not None:
        directory, revision = snapshot
        check_diffusers_dir(directory, role, setting)
        unet = directory / "unet"
        has_weights = any(unet.glob("*.safetensors")) or any(unet.glob("*.bin"))
        if not has_weights and not models.allow_download:
            raise ModelError(f"{setting}: {spec} is only partly in the Hugging Face cache "
                             f"(no UNet weights under {unet})",
                             hint="set models.allow_download: true once to finish the download, "
                                  "or point the setting at a complete local copy")
        if has_weights:  # else fall through: downloads are on, so let the hub finish the copy
            return ModelSource(role=role, spec=spec, kind="hub", location=str(directory),
                               label=f"{spec} (hub cache, revision {revision[:12]})", setting=setting,
                               hub_id=spec, revision=revision)
    if models.allow_download:
        return ModelSource(role=role, spec=spec, kind="hub", location=spec, label=f"{spec} (will download)",
                           setting=setting, hub_id=spec)
    raise ModelError(
        f"{setting}: {spec!r} is not a local path (tried: {', '.join(tried)}) and is not in the Hugging Face "
        f"cache ({hub_cache_dir()}); downloads are off",
        hint=VAE_HINT if role == "vae" else
        f"set models.allow_download: true to download it once, or point {setting} at a local diffusers "
        f"directory or .safetensors file, or use 'builtin:{_BUILTIN_FOR_ROLE[role]}' for an offline self-test")
