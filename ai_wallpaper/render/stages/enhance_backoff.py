"""The enhancement's denoising run, surviving out-of-memory errors the way the upscaler does.

On `torch.OutOfMemoryError` the whole denoise restarts from the same seeded noise (a fresh scheduler,
the generator re-seeded), first with half the tiles per UNet call, then, at one tile per call, with
half the tile laid out by the same `tile_layout.enhance_grid` as the normal path (the minimum overlap
stays: it is a blend width in pixels). The VAE passes back off by themselves (stages/vae.py). Every
choice is reported through `on_decision` as it is made, so the run record holds it and `--resume`
repeats it: the batch size changes the result's last bits, the tile size its picture.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ai_wallpaper.core import log
from ai_wallpaper.core.errors import RunError
from ai_wallpaper.render.stages.common import CancelCheck, Progress
from ai_wallpaper.render.stages.enhance_denoise import (
    Denoiser,
    add_seeded_noise,
    denoise_tiled,
    fresh_scheduler,
    img2img_timesteps,
)
from ai_wallpaper.render.stages.tile_layout import enhance_grid
from ai_wallpaper.render.stages.tiling import TileBox, blend_weights, validate_tiling

if TYPE_CHECKING:
    import torch

    from ai_wallpaper.config.vocabulary import BlendKind, SchedulerName

logger = log.get(__name__)
# Below this an SDXL tile holds too little of the scene to keep its detail coherent: fail instead.
MIN_TILE_PX = 512


@dataclass(frozen=True)
class Layout:
    """One tiling of the latent: the pixel settings it came from (largest tile side, minimum overlap),
    the latent boxes (all one size) and their blend weights."""

    tile: int
    overlap: int
    boxes: list[TileBox]
    weights: torch.Tensor

    @classmethod
    def of(cls, height: int, width: int, tile: int, overlap: int, scale: int, blend: BlendKind) -> Layout:
        validate_tiling(height, width, tile, overlap, scale)
        boxes = enhance_grid(height // scale, width // scale, tile // scale, overlap // scale)
        return cls(tile, overlap, boxes, blend_weights(boxes[0].h, boxes[0].w, blend, overlap=overlap // scale))

    def tile_px(self, scale: int) -> tuple[int, int]:
        """(height, width) of every tile in pixels: what the UNet's micro-conditioning names."""
        return self.boxes[0].h * scale, self.boxes[0].w * scale


@dataclass
class Denoising:
    """What the denoise needs besides the layout; `denoiser_for((h, w))` builds the UNet call for a
    tile size in pixels (its micro-conditioning names the tile size)."""

    pipe: Any
    clean: torch.Tensor
    scheduler_name: SchedulerName
    steps: int
    strength: float
    seed: int
    device: Any
    denoiser_for: Callable[[tuple[int, int]], Denoiser]
    progress: Progress
    cancel: CancelCheck
    on_decision: Callable[[dict[str, Any]], None]
    backoffs: list[str] = field(default_factory=list)


def denoise_with_backoff(job: Denoising, layout: Layout, batch: int, size: tuple[int, int],
                         scale: int, blend: BlendKind) -> torch.Tensor:
    """The denoised latents; RunError when even one MIN_TILE_PX tile per call does not fit."""
    import torch

    height, width = size
    while True:
        job.on_decision({"batch_size": batch, "tile": layout.tile, "overlap": layout.overlap,
                         "backoffs": list(job.backoffs)})
        # 1. The same start every time: fresh scheduler, generator re-seeded, the same noise.
        scheduler = fresh_scheduler(job.pipe, job.scheduler_name)
        timesteps = img2img_timesteps(scheduler, job.steps, job.strength, job.device)
        generator = torch.Generator("cpu").manual_seed(job.seed)
        latents = add_seeded_noise(scheduler, job.clean, timesteps[:1], generator)
        try:
            denoiser = job.denoiser_for(layout.tile_px(scale))
            return denoise_tiled(latents, timesteps, scheduler, denoiser, layout.boxes, layout.weights, batch,
                                 generator, job.progress, job.cancel)
        except torch.OutOfMemoryError:
            pass
        # 2. Out of memory (outside the except block, so the traceback's tensors are freed).
        del latents
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if batch > 1:
            batch, why = batch // 2, f"out of memory at batch {batch}: batch {batch // 2}"
        else:
            tile = layout.tile // 2 // (8 * scale) * (8 * scale)
            if tile < MIN_TILE_PX:
                raise RunError(f"the enhancement ran out of memory even with one {layout.tile} px tile per call",
                               hint="set models.memory.cpu_offload: model, close other GPU programs, or "
                                    "disable pipeline.enhance")
            why = f"out of memory with {layout.tile} px tiles: {tile} px tiles"
            layout = Layout.of(height, width, tile, layout.overlap, scale, blend)
        job.backoffs.append(why)
        logger.warning("enhance.oom_backoff", reason=why)
