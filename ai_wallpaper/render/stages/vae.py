"""How a stage runs the VAE: whole or in tiles (models.memory.vae_tiling), and in float32 when an
fp16 VAE is not fp16-safe. The pipe's VAE is always restored afterwards: the base, the enhancement and
the refiner may share it.

auto runs the VAE whole up to render/devices.py VAE_UNTILED_MAX_PIXELS (tiles leave faint tone steps
at their borders with real SDXL weights) and tiled above it, and an untiled pass that runs out of
memory is retried tiled (`vae_pass`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ai_wallpaper.core import log
from ai_wallpaper.render.devices import VAE_TILE_PX, VaeTiling, vae_tiling_mode, wants_vae_tiling

if TYPE_CHECKING:
    import torch

logger = log.get(__name__)
T = TypeVar("T")


@contextmanager
def vae_mode(vae: Any, tiled: bool, *, upcast: bool = True) -> Iterator[torch.dtype]:
    """The VAE tiled (VAE_TILE_PX tiles) or whole, upcast to float32 if it asks for it (and `upcast`:
    a diffusers pipeline call upcasts by itself), for the duration of the block; yields the dtype to
    feed it."""
    import torch

    old_tiling, old_dtype = getattr(vae, "use_tiling", False), vae.dtype
    old_tiles = (getattr(vae, "tile_sample_min_size", None), getattr(vae, "tile_latent_min_size", None))
    upcast = upcast and old_dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    vae.use_tiling = tiled
    if old_tiles[0] is not None:
        # SDXL's own tile size; small models (the built-in tiny VAE says 128) would otherwise cut
        # 8K into ~3000 tiles and spend minutes on overhead.
        vae.tile_sample_min_size = VAE_TILE_PX
        vae.tile_latent_min_size = VAE_TILE_PX // 2 ** (len(vae.config.block_out_channels) - 1)
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        yield vae.dtype
    finally:
        vae.use_tiling = old_tiling
        if old_tiles[0] is not None:
            vae.tile_sample_min_size, vae.tile_latent_min_size = old_tiles
        if upcast:
            vae.to(dtype=old_dtype)


def vae_pass(vae: Any, setting: VaeTiling | bool, pixels: int, run: Callable[[torch.dtype], T]) -> tuple[T, bool]:
    """run(dtype) with the VAE whole or tiled as `setting` wants for `pixels`; under auto an
    out-of-memory error of the whole pass is retried tiled. Returns (result, whether it ran tiled)."""
    import torch

    tiled = wants_vae_tiling(setting, pixels)
    try:
        with vae_mode(vae, tiled) as dtype:
            return run(dtype), tiled
    except torch.OutOfMemoryError:
        if tiled or vae_tiling_mode(setting) != "auto":
            raise
    gc.collect()  # outside the except block, so the traceback's tensors are freed
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    logger.warning("vae.oom_retry_tiled", pixels=pixels)
    with vae_mode(vae, True) as dtype:
        return run(dtype), True
