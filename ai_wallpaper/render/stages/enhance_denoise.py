"""The enhancement's denoising: prompt conditioning, the UNet as a tile denoiser, img2img timesteps
and seeded noise, the tiled loop that blends tile predictions into one scheduler step, and how many
tiles go through the UNet at once.

Batching tiles never changes the result: tiles are accumulated in a fixed order and all randomness
comes from one CPU generator.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai_wallpaper.config.vocabulary import SchedulerName
from ai_wallpaper.render.stages.common import CancelCheck, Progress, never_cancel, no_progress, raise_if_cancelled
from ai_wallpaper.render.stages.conditioning import encode_prompts
from ai_wallpaper.render.stages.schedulers import make_scheduler
from ai_wallpaper.render.stages.tiling import TileBox

if TYPE_CHECKING:
    import torch

# (model input tiles (B, C, h, w), timestep, latent boxes of those tiles) -> noise prediction (B, C, h, w).
Denoiser = Callable[["torch.Tensor", "torch.Tensor", Sequence[TileBox]], "torch.Tensor"]

# Bounded activation estimate for one UNet sample: this many feature maps of the first UNet
# level (latent_h x latent_w x block_out_channels[0]). SDXL at a 1024 px tile in fp16 is
# ~0.67 GB per sample by this rule, above what it really needs with SDPA, so "auto" is safe.
_ACTIVATION_MAPS_PER_SAMPLE = 64
_MEMORY_BUDGET_FRACTION = 0.5  # leave half the free memory for the allocator, VAE and others
_MAX_AUTO_BATCH = 16  # beyond this a GPU gains nothing measurable and the last batch gets lopsided


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


def encode_conditioning(pipe: Any, prompt: str, negative_prompt: str, guidance_scale: float,
                        tile_px: tuple[int, int], device: torch.device) -> Conditioning:
    """Encode the prompt ONCE per run (under inference mode) and build the SDXL micro-conditioning
    shared by all tiles."""
    import torch

    use_cfg = guidance_scale > 1.0  # diffusers' convention: CFG <= 1 is plain conditional
    # Micro-conditioning: each tile is conditioned as a standalone image of the tile's (h, w),
    # original = target = tile size, crop (0, 0) -- what SDXL img2img uses for a 1024^2 picture
    # and what the peers' per-tile passes use. Honest crop offsets would reach 6656 px at 8K,
    # far outside anything SDXL saw in training (and SDXL renders non-zero crops as "cut off"
    # content); one shared vector also keeps every tile's UNet input identical in form.
    ids = [tile_px[0], tile_px[1], 0, 0, tile_px[0], tile_px[1]]  # original (h, w), crop (0, 0), target (h, w)
    # The prompt is encoded whole, A1111 weights honoured, exactly as txt2img encodes it (no negative:
    # zeros, as diffusers does for SDXL). Inference mode (there and here): no autograd graph is kept
    # for the text encoders, and every tensor built here is an inference tensor like the UNet's inputs.
    enc = encode_prompts(pipe, prompt, negative_prompt or None)
    with torch.inference_mode():
        pos, neg = enc.prompt_embeds.to(device), enc.negative_prompt_embeds.to(device)
        pos_pooled, neg_pooled = enc.pooled_prompt_embeds.to(device), enc.negative_pooled_prompt_embeds.to(device)
        embeds = torch.cat([neg, pos]) if use_cfg else pos
        pooled = torch.cat([neg_pooled, pos_pooled]) if use_cfg else pos_pooled
        expected = pipe.unet.add_embedding.linear_1.in_features
        passed = pipe.unet.config.addition_time_embed_dim * len(ids) + pooled.shape[-1]
        if expected != passed:
            raise ValueError(f"the enhancement needs an SDXL base UNet with 6 micro-conditioning ids; this UNet "
                             f"expects an added embedding of {expected}, not {passed} (a refiner UNet?). "
                             "Use models.base (an SDXL base model) for the enhancement.")
        time_ids = torch.tensor([ids] * embeds.shape[0], dtype=embeds.dtype, device=device)
    return Conditioning(embeds=embeds, pooled=pooled, time_ids=time_ids, guidance_scale=guidance_scale)


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


def fresh_scheduler(pipe: Any, name: SchedulerName | None = None) -> Any:
    """A private scheduler built from the pipe's scheduler config (the model's noise schedule): of
    kind `name` (`schedulers.make_scheduler`), or of the pipe's own kind when None. The pipe's own
    scheduler is never mutated."""
    if name is not None:
        return make_scheduler(name, pipe.scheduler.config)
    return type(pipe.scheduler).from_config(pipe.scheduler.config)


def step_kwargs(scheduler: Any, generator: torch.Generator) -> dict[str, Any]:
    """Extra `scheduler.step` arguments, like diffusers' `prepare_extra_step_kwargs`: ancestral/SDE
    samplers draw fresh noise inside step() and get the run's one CPU generator (on the whole
    latent, so the draw does not depend on tiling or batching). `eta` is left at its default (0)."""
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    return {"generator": generator} if takes_generator else {}


def img2img_timesteps(scheduler: Any, steps: int, strength: float, device: torch.device) -> torch.Tensor:
    """Set `steps` timesteps and keep the last int(steps*strength) of them, like diffusers'
    StableDiffusionXLImg2ImgPipeline.get_timesteps; `set_begin_index` makes the sigma-indexed
    schedulers (Euler, Euler a, DPM++) start their step counter and `add_noise` at the first kept one."""
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
    extra = step_kwargs(scheduler, generator)
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
            stepped = scheduler.step(blended / weight_sum, t, latents, **extra, return_dict=False)[0]
            latents = stepped.float()
    return latents


def auto_batch_size(n_tiles: int, latent_area: int, unet: Any, cfg_branches: int, free_bytes: int) -> int:
    """Tiles per UNet call that fit in half the free memory by a bounded per-sample estimate,
    balanced so the last batch is not a lone straggler."""
    elem = unet.dtype.itemsize
    per_tile = (_ACTIVATION_MAPS_PER_SAMPLE * latent_area * unet.config.block_out_channels[0]
                * elem * cfg_branches)
    fit = int(free_bytes * _MEMORY_BUDGET_FRACTION // per_tile)
    cap = max(1, min(fit, _MAX_AUTO_BATCH, n_tiles))
    n_batches = math.ceil(n_tiles / cap)
    return math.ceil(n_tiles / n_batches)
