"""Stage 4: 8K detail enhancement by tiled latent img2img with blended noise predictions.

Mixture-of-Diffusers style (docs/ARCHITECTURE.md §4): the whole 8K image is encoded to latents once, noised
once for `strength`, and at every timestep the UNet runs on each full-size latent tile; the tile
noise predictions are blended with smooth, sum-normalised weights into ONE full-size prediction
and ONE scheduler step is taken on the whole latent. No pixel-space pasting, no seam-fix passes,
one scheduler state. Batching tiles never changes the result: tiles are accumulated in a fixed
order and all randomness comes from one CPU generator.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ai_wallpaper.core import log
from ai_wallpaper.render.stages.common import (
    CancelCheck,
    Progress,
    latent_normalisation,
    never_cancel,
    no_progress,
    pil_to_tensor,
    raise_if_cancelled,
    tensor_to_pil,
)
from ai_wallpaper.render.stages.tiling import BLEND_KINDS, TileBox, blend_weights, tile_grid, validate_tiling

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from ai_wallpaper.config.settings import EnhanceSettings

logger = log.get(__name__)

# (model input tiles (B, C, h, w), timestep, latent boxes of those tiles) -> noise prediction (B, C, h, w).
Denoiser = Callable[["torch.Tensor", "torch.Tensor", Sequence[TileBox]], "torch.Tensor"]

# Bounded activation estimate for one UNet sample: this many feature maps of the first UNet
# level (latent_h x latent_w x block_out_channels[0]). SDXL at a 1024 px tile in fp16 is
# ~0.67 GB per sample by this rule, above what it really needs with SDPA, so "auto" is safe.
_ACTIVATION_MAPS_PER_SAMPLE = 64
_MEMORY_BUDGET_FRACTION = 0.5  # leave half the free memory for the allocator, VAE and others
_MAX_AUTO_BATCH = 16  # beyond this a GPU gains nothing measurable and the last batch gets lopsided
# Above this many pixels the VAE runs tiled. 1920x1024 (what txt2img decodes whole anyway) stays
# untiled: faster and free of VAE tile seams; an 8K image (31 MP) is always tiled.
VAE_UNTILED_MAX_PIXELS = 1920 * 1080
# VAE tile size in pixels while tiled: SDXL's own (its config sample_size). Small models (the
# built-in tiny VAE says 128) would otherwise cut 8K into ~3000 tiles and spend minutes on overhead.
VAE_TILE_PX = 1024


@dataclass(frozen=True)
class EnhanceConfig:
    prompt: str
    negative_prompt: str
    seed: int
    tile: int = 1024
    overlap: int = 256
    strength: float = 0.35
    steps: int = 30
    guidance_scale: float = 5.0
    blend: Literal["gaussian", "cosine"] = "gaussian"
    batch_size: int | None = None  # None = auto from free memory

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid enhancement settings:\n  - " + "\n  - ".join(problems))

    def problems(self) -> list[str]:
        """Every image-independent problem, each naming the setting and the fix."""
        p: list[str] = []
        if not isinstance(self.prompt, str) or not isinstance(self.negative_prompt, str):
            p.append("prompt and negative_prompt must be strings")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            p.append(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        if self.tile <= 0 or self.tile % 64:
            p.append(f"pipeline.enhance.tile: must be a positive multiple of 64, got {self.tile}; "
                     f"try {max(64, self.tile // 64 * 64)}")
        if self.overlap < 0 or self.overlap % 8:
            p.append(f"pipeline.enhance.overlap: must be a non-negative multiple of 8, got {self.overlap}; "
                     f"try {max(0, self.overlap // 8 * 8)}")
        if self.overlap >= self.tile:
            p.append(f"pipeline.enhance.overlap: must be less than pipeline.enhance.tile ({self.tile}), "
                     f"got {self.overlap}; try {self.tile // 4 // 8 * 8}")
        if not 0.0 <= self.strength <= 1.0:
            p.append(f"pipeline.enhance.strength: must be in [0, 1], got {self.strength}")
        if self.steps < 1:
            p.append(f"pipeline.enhance.steps: must be at least 1, got {self.steps}")
        if not math.isfinite(self.guidance_scale) or self.guidance_scale < 0:
            p.append("pipeline.enhance.guidance_scale: must be a finite number >= 0, "
                     f"got {self.guidance_scale}")
        if self.blend not in BLEND_KINDS:
            p.append(f"pipeline.enhance.blend: must be one of {', '.join(BLEND_KINDS)}, got {self.blend!r}")
        if self.batch_size is not None and self.batch_size < 1:
            p.append(f"pipeline.enhance.batch_size: must be >= 1 or 'auto', got {self.batch_size}")
        return p

    @property
    def steps_to_run(self) -> int:
        """Like img2img: only the last int(steps * strength) timesteps are run."""
        return min(int(self.steps * self.strength), self.steps)

    @classmethod
    def from_settings(cls, settings: EnhanceSettings, *, prompt: str, negative_prompt: str,
                      seed: int) -> EnhanceConfig:
        batch = None if settings.batch_size == "auto" else int(settings.batch_size)
        return cls(prompt=prompt, negative_prompt=negative_prompt, seed=seed, tile=settings.tile,
                   overlap=settings.overlap, strength=settings.strength, steps=settings.steps,
                   guidance_scale=settings.guidance_scale, blend=settings.blend, batch_size=batch)


def unet_noise_prediction(unet: Any, sample: torch.Tensor, timestep: torch.Tensor, embeds: torch.Tensor,
                          pooled: torch.Tensor, time_ids: torch.Tensor) -> torch.Tensor:
    """The one UNet call, kept tiny so it can be torch.compile'd for the fixed tile shape."""
    return unet(sample, timestep, encoder_hidden_states=embeds,
                added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)[0]


@dataclass(frozen=True)
class Conditioning:
    """Prompt conditioning for one sample per CFG branch: rows are [negative, positive] with CFG."""

    embeds: torch.Tensor
    pooled: torch.Tensor
    time_ids: torch.Tensor
    guidance_scale: float

    @property
    def cfg(self) -> bool:
        return self.embeds.shape[0] == 2


def encode_conditioning(pipe: Any, cfg: EnhanceConfig, tile_px: int, device: torch.device) -> Conditioning:
    """Encode the prompt ONCE per run and build the SDXL micro-conditioning shared by all tiles."""
    import torch

    use_cfg = cfg.guidance_scale > 1.0  # diffusers' convention: CFG <= 1 is plain conditional
    pos, neg, pos_pooled, neg_pooled = pipe.encode_prompt(
        prompt=cfg.prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=use_cfg,
        negative_prompt=cfg.negative_prompt or None)
    embeds = torch.cat([neg, pos]) if use_cfg else pos
    pooled = torch.cat([neg_pooled, pos_pooled]) if use_cfg else pos_pooled
    # Micro-conditioning: each tile is conditioned as a standalone tile_px x tile_px image,
    # original = target = tile size, crop (0, 0) -- what SDXL img2img uses for a 1024^2 picture
    # and what the peers' per-tile passes use. Honest crop offsets would reach 6656 px at 8K,
    # far outside anything SDXL saw in training (and SDXL renders non-zero crops as "cut off"
    # content); one shared vector also keeps every tile's UNet input identical in form.
    ids = [tile_px, tile_px, 0, 0, tile_px, tile_px]
    expected = pipe.unet.add_embedding.linear_1.in_features
    passed = pipe.unet.config.addition_time_embed_dim * len(ids) + pooled.shape[-1]
    if expected != passed:
        raise ValueError(f"the enhancement needs an SDXL base UNet with 6 micro-conditioning ids; this UNet "
                         f"expects an added embedding of {expected}, not {passed} (a refiner UNet?). "
                         "Use models.base (an SDXL base model) for the enhancement.")
    time_ids = torch.tensor([ids] * embeds.shape[0], dtype=embeds.dtype, device=device)
    return Conditioning(embeds=embeds, pooled=pooled, time_ids=time_ids, guidance_scale=cfg.guidance_scale)


def unet_denoiser(unet: Any, cond: Conditioning) -> Denoiser:
    """The real denoiser: the UNet on a batch of tiles, CFG doubling the batch."""
    import torch

    def denoise(sample: torch.Tensor, timestep: torch.Tensor, boxes: Sequence[TileBox]) -> torch.Tensor:
        n = sample.shape[0]
        branches = cond.embeds.shape[0]
        model_in = torch.cat([sample] * branches).to(unet.dtype)
        pred = unet_noise_prediction(
            unet, model_in, timestep, cond.embeds.repeat_interleave(n, dim=0),
            cond.pooled.repeat_interleave(n, dim=0), cond.time_ids.repeat_interleave(n, dim=0)).float()
        if not cond.cfg:
            return pred
        uncond, text = pred.chunk(2)
        return uncond + cond.guidance_scale * (text - uncond)

    return denoise


@contextmanager
def _vae_for_size(vae: Any, pixels: int) -> Iterator[torch.dtype]:
    """Temporarily set VAE tiling for an image of `pixels` pixels (tiled above
    VAE_UNTILED_MAX_PIXELS) and run an fp16 VAE that is not fp16-safe (force_upcast) in fp32;
    the pipe's VAE is restored afterwards."""
    import torch

    old_tiling, old_dtype = getattr(vae, "use_tiling", False), vae.dtype
    old_tiles = (getattr(vae, "tile_sample_min_size", None), getattr(vae, "tile_latent_min_size", None))
    upcast = old_dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    vae.use_tiling = pixels > VAE_UNTILED_MAX_PIXELS
    if old_tiles[0] is not None:
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


def encode_image(pipe: Any, image: Image.Image, device: torch.device) -> torch.Tensor:
    """PIL -> scaled fp32 latents (1, C, H/8, W/8). Uses the posterior mean, not a sample: VAE
    sampling noise would only add grain, and the mean keeps the identity exact."""
    import torch

    vae = pipe.vae
    with torch.inference_mode(), _vae_for_size(vae, image.width * image.height) as dtype:
        pixels = (pil_to_tensor(image) * 2.0 - 1.0).to(device=device, dtype=dtype)
        latents = vae.encode(pixels).latent_dist.mode().float()
    mean, std, shift = latent_normalisation(vae, device)
    if mean is not None and std is not None:
        return (latents - mean) * vae.config.scaling_factor / std
    return (latents - shift) * vae.config.scaling_factor


def decode_latents(pipe: Any, latents: torch.Tensor) -> Image.Image:
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
    with torch.inference_mode(), _vae_for_size(vae, size) as dtype:
        pixels = vae.decode(latents.to(dtype)).sample.float()
    return tensor_to_pil((pixels / 2.0 + 0.5).clamp(0, 1))


def fresh_scheduler(pipe: Any) -> Any:
    """A private scheduler with the pipe's config: the pipe's own is never mutated."""
    return type(pipe.scheduler).from_config(pipe.scheduler.config)


def img2img_timesteps(scheduler: Any, steps: int, strength: float, device: torch.device) -> torch.Tensor:
    """Set `steps` timesteps and keep the last int(steps*strength) of them, like diffusers img2img."""
    scheduler.set_timesteps(steps, device=device)
    t_start = steps - min(int(steps * strength), steps)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * scheduler.order)
    timesteps: torch.Tensor = scheduler.timesteps[t_start * scheduler.order:]
    return timesteps


def add_seeded_noise(scheduler: Any, clean: torch.Tensor, first_t: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """Noise the clean latents to the first kept timestep; noise drawn on the CPU for
    device-independent, batch-independent determinism."""
    import torch

    noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32).to(clean.device)
    noisy: torch.Tensor = scheduler.add_noise(clean, noise, first_t.reshape(1))
    return noisy


def denoise_tiled(latents: torch.Tensor, timesteps: torch.Tensor, scheduler: Any, denoiser: Denoiser,
                  boxes: Sequence[TileBox], weights: torch.Tensor, batch_size: int,
                  generator: torch.Generator, progress: Progress = no_progress,
                  cancel: CancelCheck = never_cancel) -> torch.Tensor:
    """The denoising loop on the whole latent. `boxes` and `weights` (tile_h, tile_w) are in latent
    pixels. Per timestep: denoiser on every tile (in batches), weighted blend into one full-size
    prediction divided by the per-pixel weight sum, ONE scheduler step on the whole latent."""
    import torch

    latents = latents.float()
    weights = weights.to(device=latents.device, dtype=torch.float32)
    weight_sum = torch.zeros(latents.shape[-2:], device=latents.device, dtype=torch.float32)
    for box in boxes:
        weight_sum[box.slices()] += weights
    if not bool((weight_sum > 0).all()):
        raise ValueError("the tiles do not cover the whole latent (a tiling bug)")
    batches = [list(boxes[i:i + batch_size]) for i in range(0, len(boxes), batch_size)]
    # Ancestral/SDE schedulers draw noise inside step(): give them our generator (determinism).
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    step_kwargs = {"generator": generator} if takes_generator else {}
    total, done = len(timesteps) * len(batches), 0
    with torch.inference_mode():
        for t in timesteps:
            model_input = scheduler.scale_model_input(latents, t)
            blended = torch.zeros_like(latents)
            for batch in batches:
                raise_if_cancelled(cancel)
                tiles = torch.cat([model_input[(..., *box.slices())] for box in batch])
                pred = denoiser(tiles, t, batch).float()
                # Accumulate tile by tile in grid order so batching cannot change the sum's order.
                for i, box in enumerate(batch):
                    blended[(..., *box.slices())] += pred[i:i + 1] * weights
                done += 1
                progress(done, total)
            stepped = scheduler.step(blended / weight_sum, t, latents, **step_kwargs, return_dict=False)[0]
            latents = stepped.float()
    return latents


def free_memory_bytes(device: torch.device) -> int:
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def auto_batch_size(n_tiles: int, latent_tile: int, unet: Any, cfg_branches: int, free_bytes: int) -> int:
    """Tiles per UNet call that fit in half the free memory by a bounded per-sample estimate,
    balanced so the last batch is not a lone straggler."""
    elem = unet.dtype.itemsize
    per_tile = (_ACTIVATION_MAPS_PER_SAMPLE * latent_tile * latent_tile * unet.config.block_out_channels[0]
                * elem * cfg_branches)
    fit = int(free_bytes * _MEMORY_BUDGET_FRACTION // per_tile)
    cap = max(1, min(fit, _MAX_AUTO_BATCH, n_tiles))
    n_batches = math.ceil(n_tiles / cap)
    return math.ceil(n_tiles / n_batches)


def run_enhance(image: Image.Image, pipe: Any, cfg: EnhanceConfig, progress: Progress = no_progress,
                cancel: CancelCheck = never_cancel, *, denoiser: Denoiser | None = None) -> Image.Image:
    """Enhance an (8K) image with SDXL tiled img2img. `pipe` is a StableDiffusionXLPipeline; it is
    not mutated (its VAE is tiled/upcast only for the duration of a call). `denoiser` replaces
    the UNet (tests, benchmarks); None = the pipe's UNet with CFG."""
    import torch

    # 1. Check inputs (config validated itself on construction; these depend on the image).
    image = image.convert("RGB")
    width, height = image.size
    scale = int(pipe.vae_scale_factor)
    validate_tiling(height, width, cfg.tile, cfg.overlap, scale)
    if cfg.steps_to_run == 0:
        logger.info("enhance.skipped", reason="strength x steps < 1: nothing to run", strength=cfg.strength)
        return image.copy()
    device = pipe._execution_device
    latent_tile = cfg.tile // scale
    boxes = tile_grid(height // scale, width // scale, latent_tile, cfg.overlap // scale)
    weights = blend_weights(latent_tile, latent_tile, cfg.blend, overlap=cfg.overlap // scale)

    # 2. Encode the prompt once for the whole run (never per tile).
    cond = None
    if denoiser is None:
        cond = encode_conditioning(pipe, cfg, cfg.tile, device)
        denoiser = unet_denoiser(pipe.unet, cond)
    branches = 2 if cond is not None and cond.cfg else 1

    # 3. Encode the image to latents once (tiled VAE, fp32 if the VAE is not fp16-safe).
    raise_if_cancelled(cancel)
    clean = encode_image(pipe, image, device)

    # 4. Timesteps like img2img (the last int(steps*strength)) and seeded noise, on a private scheduler.
    scheduler = fresh_scheduler(pipe)
    timesteps = img2img_timesteps(scheduler, cfg.steps, cfg.strength, device)
    generator = torch.Generator("cpu").manual_seed(cfg.seed)
    latents = add_seeded_noise(scheduler, clean, timesteps[:1], generator)

    # 5. Denoise: every tile through the UNet per step, predictions blended, one scheduler step.
    if cfg.batch_size:
        batch = cfg.batch_size
    elif torch.device(device).type == "cpu":
        # Measured (bench/switches.py, 2-core CPU): batching tiles buys nothing on a CPU and batch 4
        # ran at 0.76x of batch 1, so "auto" means one tile per call there.
        batch = 1
    else:
        batch = auto_batch_size(len(boxes), latent_tile, pipe.unet, branches, free_memory_bytes(torch.device(device)))
    logger.info("enhance.start", size=f"{width}x{height}", tiles=len(boxes), tile=cfg.tile,
                overlap=cfg.overlap,
                steps_run=len(timesteps), batch_size=batch, batch_auto=cfg.batch_size is None,
                cfg_branches=branches, blend=cfg.blend)
    latents = denoise_tiled(latents, timesteps, scheduler, denoiser, boxes, weights, batch, generator,
                            progress, cancel)

    # 6. Decode (tiled) back to pixels.
    raise_if_cancelled(cancel)
    return decode_latents(pipe, latents)
