"""The models one pipeline run needs: each loaded on first use and released as soon as no later
stage needs it, so the base, the refiner and the upscaler are never all in memory at once."""

from __future__ import annotations

import gc
import time
from typing import Any, get_args

from ai_wallpaper.catalog.model_fingerprints import describe_model
from ai_wallpaper.catalog.model_layout import Role
from ai_wallpaper.catalog.model_sources import resolve_source
from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.core import log
from ai_wallpaper.core.paths import Paths

logger = log.get(__name__)
MODEL_ROLES: tuple[Role, ...] = get_args(Role)


def model_specs(models: ModelSettings) -> dict[Role, str | None]:
    """Each role's models.* setting (None: the role is not used; a null vae: each model's own)."""
    return {"base": models.base, "refiner": models.refiner, "upscaler": models.upscaler, "vae": models.vae}


def describe_models(models: ModelSettings, paths: Paths) -> dict[str, Any]:
    """Model identities (kind, location, file hashes) for run.json. The built-in models are made
    first (they are deterministic, and would be made at load anyway) so that a fresh cache still
    records their hashes."""
    described: dict[str, Any] = {}
    for role, spec in model_specs(models).items():
        if not spec:
            continue
        source = resolve_source(spec, role, models, paths)
        if source.kind == "builtin":
            from ai_wallpaper.catalog import builtin

            if role == "upscaler":
                builtin.ensure_builtin_upscaler(paths.builtin_models_dir)
            else:
                builtin.ensure_builtin_sdxl(paths.builtin_models_dir, source.builtin_name or "tiny")
        described[role] = describe_model(source, paths.cache_dir)
    return described


class ModelHolder:
    """Loads each model on first use and frees it when the pipeline no longer needs it."""

    def __init__(self, models: ModelSettings, paths: Paths, *, upscaler_half: bool) -> None:
        self.settings, self.paths = models, paths
        self.upscaler_half = upscaler_half
        self._loaded: dict[Role, Any] = {}

    def get(self, role: Role) -> Any:
        if role not in self._loaded:
            # Lazy: torch and diffusers load only once a stage really needs a model.
            from ai_wallpaper.render import model_loading as loading

            spec = model_specs(self.settings)[role]
            if spec is None or role == "vae":  # models.vae goes into the base and refiner pipelines
                raise ValueError(f"models.{role} is not loaded on its own; no stage should ask for it")
            started = time.monotonic()
            if role == "upscaler":
                model = loading.load_upscaler(spec, self.settings, self.paths, half=self.upscaler_half)
            elif role == "refiner":
                # Shares text_encoder_2 and the VAE with the base when they are byte-identical.
                model = loading.load_sdxl(spec, "refiner", self.settings, self.paths,
                                          share_with=self._loaded.get("base"))
            else:
                model = loading.load_sdxl(spec, "base", self.settings, self.paths)
            self._loaded[role] = model
            logger.info("model loaded", role=role, spec=spec, seconds=round(time.monotonic() - started, 2))
        return self._loaded[role]

    def release(self, role: Role) -> None:
        if self._loaded.pop(role, None) is not None:
            gc.collect()
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def release_all(self) -> None:
        for role in MODEL_ROLES:
            self.release(role)
