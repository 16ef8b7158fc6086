"""Stage 4: 8K detail enhancement by tiled latent img2img with blended noise predictions.

Mixture-of-Diffusers style (docs/ARCHITECTURE.md §4): the whole 8K image is encoded to latents once, noised
once for `strength`, and at every timestep the UNet runs on each full-size latent tile; the tile
noise predictions are blended with smooth, sum-normalised weights into ONE full-size prediction
and ONE scheduler step is taken on the whole latent (`enhance_denoise.py`). No pixel-space pasting,
no seam-fix passes, one scheduler state. The sampler is `pipeline.enhance.scheduler` (null = the
txt2img one), built on the model's noise schedule; ancestral samplers take their per-step noise from
the run's one CPU generator on the whole latent. This module holds the stage's config, the
image <-> latent conversions and the run itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai_wallpaper.config.render_settings import EnhanceSettings
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import (
    BLEND_KINDS,
    SCHEDULER_NAMES,
    BlendKind,
    SchedulerName,
    tile_overlap_problem,
)
from ai_wallpaper.core import log
from ai_wallpaper.render.devices import VaeTiling, free_memory_bytes
from ai_wallpaper.render.stages.common import (
    CancelCheck,
    Progress,
    StageConfig,
    bound_problems,
    choice_problems,
    latent_normalisation,
    never_cancel,
    no_progress,
    pil_to_tensor,
    prompt_problems,
    raise_if_cancelled,
    tensor_to_pil,
)
from ai_wallpaper.render.stages.enhance_backoff import Denoising, Layout, denoise_with_backoff
from ai_wallpaper.render.stages.enhance_denoise import (
    Denoiser,
    auto_batch_size,
    encode_conditioning,
    fresh_scheduler,
    unet_denoiser,
)
from ai_wallpaper.render.stages.vae import vae_pass

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = log.get(__name__)



@dataclass(frozen=True)
class EnhanceConfig(StageConfig):
    prompt: str
    negative_prompt: str
    seed: int
    tile: int
    overlap: int
    strength: float
    steps: int
    guidance_scale: float
    scheduler: SchedulerName  # resolved: pipeline.enhance.scheduler, else pipeline.txt2img.scheduler
    blend: BlendKind
    batch_size: int | None  # None = auto from free memory
    vae_tiling: VaeTiling | bool  # models.memory.vae_tiling

    @classmethod
    def from_settings(cls, settings: Settings, *, prompt: str, negative_prompt: str, seed: int) -> EnhanceConfig:
        e = settings.pipeline.enhance
        batch = None if e.batch_size == "auto" else int(e.batch_size)
        return cls(prompt=prompt, negative_prompt=negative_prompt, seed=seed, tile=e.tile, overlap=e.overlap,
                   strength=e.strength, steps=e.steps, guidance_scale=e.guidance_scale,
                   scheduler=e.scheduler or settings.pipeline.txt2img.scheduler, blend=e.blend,
                   batch_size=batch, vae_tiling=settings.models.memory.vae_tiling)

    def problems(self) -> list[str]:
        """Every image-independent problem (`validate_tiling` checks the rest against the image)."""
        values: dict[str, Any] = {"tile": self.tile, "overlap": self.overlap, "strength": self.strength,
                                  "steps": self.steps, "guidance_scale": self.guidance_scale}
        if self.batch_size is not None:
            values["batch_size"] = self.batch_size
        found = [*prompt_problems(self.prompt, self.negative_prompt, self.seed),
                 *bound_problems(EnhanceSettings, "pipeline.enhance", values),
                 *choice_problems("pipeline.enhance.scheduler", self.scheduler, SCHEDULER_NAMES),
                 *choice_problems("pipeline.enhance.blend", self.blend, BLEND_KINDS)]
        whole = not any(isinstance(v, bool) or not isinstance(v, int) for v in (self.tile, self.overlap))
        if whole and (problem := tile_overlap_problem(self.tile, self.overlap)):
            found.append(f"pipeline.enhance.overlap: {problem[0]}; {problem[1]}")
        return found

    @property
    def steps_to_run(self) -> int:
        """Like img2img: only the last int(steps * strength) timesteps are run."""
        return min(int(self.steps * self.strength), self.steps)


def encode_image(pipe: Any, image: Image.Image, device: torch.device, vae_tiling: VaeTiling | bool) -> torch.Tensor:
    """PIL -> scaled fp32 latents (1, C, H/8, W/8). Uses the posterior mean, not a sample: VAE
    sampling noise would only add grain, and the mean keeps the identity exact."""
    import torch

    vae = pipe.vae

    def encode(dtype: torch.dtype) -> torch.Tensor:
        pixels = (pil_to_tensor(image) * 2.0 - 1.0).to(device=device, dtype=dtype)
        return vae.encode(pixels).latent_dist.mode().float()

    with torch.inference_mode():
        latents, tiled = vae_pass(vae, vae_tiling, image.width * image.height, encode)
    logger.info("enhance.vae_encode", tiled=tiled)
    mean, std, shift = latent_normalisation(vae, device)
    if mean is not None and std is not None:
        return (latents - mean) * vae.config.scaling_factor / std
    return (latents - shift) * vae.config.scaling_factor


def decode_latents(pipe: Any, latents: torch.Tensor, vae_tiling: VaeTiling | bool) -> Image.Image:
    """Scaled latents -> PIL RGB (rounded to uint8)."""
    import torch

    vae = pipe.vae
    mean, std, shift = latent_normalisation(vae, latents.device)
    if mean is not None and std is not None:
        latents = latents * std / vae.config.scaling_factor + mean
    else:
        latents = latents / vae.config.scaling_factor + shift
    scale = int(2 ** (len(vae.config.block_out_channels) - 1))
    size = latents.shape[-2] * latents.shape[-1] * scale * scale
    with torch.inference_mode():
        pixels, tiled = vae_pass(vae, vae_tiling, size, lambda dtype: vae.decode(latents.to(dtype)).sample.float())
    logger.info("enhance.vae_decode", tiled=tiled)
    return tensor_to_pil((pixels / 2.0 + 0.5).clamp(0, 1))


def run_enhance(image: Image.Image, pipe: Any, cfg: EnhanceConfig, progress: Progress = no_progress,
                cancel: CancelCheck = never_cancel, *, denoiser: Denoiser | None = None,
                on_decision: Callable[[dict[str, Any]], None] | None = None) -> Image.Image:
    """Enhance an (8K) image with SDXL tiled img2img. `pipe` is a StableDiffusionXLPipeline; it is
    not mutated (its VAE is tiled/upcast only for the duration of a call). `denoiser` replaces
    the UNet (tests, benchmarks); None = the pipe's UNet with CFG. `on_decision` hears the batch size
    and tile chosen (again after each out-of-memory backoff: stages/enhance_backoff.py)."""
    import torch

    # 1. Check inputs (config validated itself on construction; these depend on the image).
    image = image.convert("RGB")
    width, height = image.size
    scale = int(pipe.vae_scale_factor)
    layout = Layout.of(height, width, cfg.tile, cfg.overlap, scale, cfg.blend)
    if cfg.steps_to_run == 0:
        logger.info("enhance.skipped", reason="strength x steps < 1: nothing to run", strength=cfg.strength)
        return image.copy()
    device = pipe._execution_device

    # 2. The UNet call for a tile size, its prompt encoded once per tile size (never per tile).
    encoded: dict[tuple[int, int], Denoiser] = {}

    def denoiser_for(tile_px: tuple[int, int]) -> Denoiser:
        if denoiser is not None:
            return denoiser
        if tile_px not in encoded:
            encoded.clear()  # a backoff to smaller tiles frees the larger tiles' conditioning
            cond = encode_conditioning(pipe, cfg.prompt, cfg.negative_prompt, cfg.guidance_scale, tile_px, device)
            encoded[tile_px] = unet_denoiser(pipe.unet, cond)
        return encoded[tile_px]

    denoiser_for(layout.tile_px(scale))  # encoded now: a UNet that is not an SDXL base fails before any long work
    branches = 2 if denoiser is None and cfg.guidance_scale > 1.0 else 1  # CFG doubles each UNet call

    # 3. Encode the image to latents once (tiled VAE, fp32 if the VAE is not fp16-safe).
    raise_if_cancelled(cancel)
    clean = encode_image(pipe, image, device, cfg.vae_tiling)

    # 4. Tiles per UNet call.
    if cfg.batch_size:
        batch = cfg.batch_size
    elif torch.device(device).type == "cpu":
        # Measured (bench/switches.py, 2-core CPU): batching tiles buys nothing on a CPU and batch 4
        # ran at 0.76x of batch 1, so "auto" means one tile per call there.
        batch = 1
    else:
        batch = auto_batch_size(len(layout.boxes), layout.boxes[0].h * layout.boxes[0].w, pipe.unet, branches,
                                free_memory_bytes(torch.device(device)))
    logger.info("enhance.start", size=f"{width}x{height}", tiles=len(layout.boxes), tile=cfg.tile,
                overlap=cfg.overlap, scheduler=cfg.scheduler,
                scheduler_class=type(fresh_scheduler(pipe, cfg.scheduler)).__name__, steps_run=cfg.steps_to_run,
                batch_size=batch,
                batch_auto=cfg.batch_size is None, cfg_branches=branches, blend=cfg.blend)

    # 5. Denoise from seeded noise with the configured sampler (img2img timesteps: the last
    #    int(steps*strength)); every tile through the UNet per step, predictions blended, one
    #    scheduler step on the whole latent; out of memory -> smaller batches, then smaller tiles.
    job = Denoising(pipe, clean, cfg.scheduler, cfg.steps, cfg.strength, cfg.seed, device, denoiser_for,
                    progress, cancel, on_decision or (lambda _decision: None))
    latents = denoise_with_backoff(job, layout, batch, (height, width), scale, cfg.blend)

    # 6. Decode (tiled) back to pixels.
    raise_if_cancelled(cancel)
    return decode_latents(pipe, latents, cfg.vae_tiling)
