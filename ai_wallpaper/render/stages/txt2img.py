"""Stage 1: SDXL text-to-image (the base image, or base latents for the refiner hand-off).

Pure core: the caller passes an already loaded pipeline; nothing here reads or writes files.

The shared pipe is never changed. The scheduler is set on a *shallow copy* of the pipeline
(`copy.copy`), which shares every sub-model (UNet, VAE, text encoders, LoRA adapters, offload
hooks) but has its own attribute dict, so `copy.scheduler = ...` and the per-call state diffusers
keeps on the pipeline object (`_guidance_scale`, `_interrupt`, ...) never touch the original. We
chose this over "set and restore" because a restore can be skipped by an exception mid-run and
because it is safe if two stages ever share one pipe.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai_wallpaper.config.render_settings import RefineSettings, Txt2ImgSettings
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import SCHEDULER_NAMES, SchedulerName
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import Cancelled
from ai_wallpaper.render.devices import VaeTiling, wants_vae_tiling
from ai_wallpaper.render.stages.common import (
    CancelCheck,
    Progress,
    StageConfig,
    bound_problems,
    choice_problems,
    latent_normalisation,
    never_cancel,
    no_progress,
    prompt_problems,
    raise_if_cancelled,
)
from ai_wallpaper.render.stages.conditioning import encode_prompts
from ai_wallpaper.render.stages.schedulers import make_scheduler
from ai_wallpaper.render.stages.vae import vae_mode

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = log.get(__name__)

# Keys a caller may pass in `embeds` (precomputed conditioning; by default `conditioning.encode_prompts`).
EMBED_KEYS = frozenset(
    {"prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"}
)


@dataclass(frozen=True)
class Txt2ImgConfig(StageConfig):
    prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    scheduler: SchedulerName
    # With a refiner the base stops at this fraction and hands latents over (ensemble of experts).
    denoising_end: float | None
    vae_tiling: VaeTiling | bool  # models.memory.vae_tiling

    @classmethod
    def from_settings(cls, settings: Settings, *, prompt: str, negative_prompt: str, seed: int) -> Txt2ImgConfig:
        t = settings.pipeline.txt2img
        handoff = settings.pipeline.refine.high_noise_frac if settings.models.refiner is not None else None
        return cls(prompt=prompt, negative_prompt=negative_prompt, seed=seed, width=t.width, height=t.height,
                   steps=t.steps, guidance_scale=t.guidance_scale, scheduler=t.scheduler, denoising_end=handoff,
                   vae_tiling=settings.models.memory.vae_tiling)

    def problems(self) -> list[str]:
        found = [*prompt_problems(self.prompt, self.negative_prompt, self.seed),
                 *bound_problems(Txt2ImgSettings, "pipeline.txt2img",
                                 {"width": self.width, "height": self.height, "steps": self.steps,
                                  "guidance_scale": self.guidance_scale}),
                 *choice_problems("pipeline.txt2img.scheduler", self.scheduler, SCHEDULER_NAMES)]
        if self.denoising_end is not None:
            found += bound_problems(RefineSettings, "pipeline.refine", {"high_noise_frac": self.denoising_end})
        return found


@dataclass(frozen=True)
class Txt2ImgResult:
    """Exactly one of the two is set: `latents` when cfg.denoising_end was given, else `image`."""

    image: Image.Image | None
    latents: torch.Tensor | None


def run_txt2img(
    pipe: Any,
    cfg: Txt2ImgConfig,
    progress: Progress = no_progress,
    cancel: CancelCheck = never_cancel,
    *,
    embeds: Mapping[str, torch.Tensor] | None = None,
) -> Txt2ImgResult:
    """Generate the base image (or partly denoised latents) with a StableDiffusionXLPipeline.

    `progress(step, total)` is called after every denoising step; `cancel()` is polled before the
    run and after every step, and a True raises `Cancelled` (the remaining steps never run).
    `embeds`, if given, replaces the text prompts with precomputed embeddings (keys: EMBED_KEYS);
    without it the prompts are encoded whole, A1111 weights honoured (`conditioning.encode_prompts`).
    """
    import torch

    # 1. Fail fast: nothing is computed for a run that was already cancelled.
    raise_if_cancelled(cancel)

    # 2. A private view of the pipe with its own fresh scheduler (see the module docstring).
    run_pipe = copy.copy(pipe)
    run_pipe.scheduler = make_scheduler(cfg.scheduler, pipe.scheduler.config)

    # 3. Whole, weighted prompts: never cut at CLIP's 77 tokens (diffusers' own encoding would cut them).
    if embeds is None:
        embeds = encode_prompts(pipe, cfg.prompt, cfg.negative_prompt).as_kwargs()

    # 4. The seed drives a CPU generator: the same seed gives the same noise on any device.
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)

    # 5. Run, reporting progress and honouring cancel between steps.
    want_latents = cfg.denoising_end is not None
    logger.info("txt2img.start", width=cfg.width, height=cfg.height, steps=cfg.steps,
                scheduler=cfg.scheduler, seed=cfg.seed, denoising_end=cfg.denoising_end,
                vae_tiled=wants_vae_tiling(cfg.vae_tiling, cfg.width * cfg.height) and not want_latents)
    # Inference mode covers every model call (no autograd graph is ever kept). The VAE decodes whole
    # unless vae_tiling says so.
    tiled = wants_vae_tiling(cfg.vae_tiling, cfg.width * cfg.height) and not want_latents
    with torch.inference_mode(), vae_mode(pipe.vae, tiled, upcast=False):
        output = run_pipe(
            **prompt_kwargs(cfg.prompt, cfg.negative_prompt, embeds),
            width=cfg.width,
            height=cfg.height,
            num_inference_steps=cfg.steps,
            guidance_scale=cfg.guidance_scale,
            denoising_end=cfg.denoising_end,
            generator=generator,
            output_type="latent" if want_latents else "pil",
            callback_on_step_end=step_callback(progress, cancel),
            callback_on_step_end_tensor_inputs=["latents"],
        )

    # 6. Hand back exactly what the next stage needs.
    if want_latents:
        return Txt2ImgResult(image=None, latents=output.images)
    return Txt2ImgResult(image=output.images[0], latents=None)


def prompt_kwargs(prompt: str, negative_prompt: str,
                  embeds: Mapping[str, torch.Tensor] | None) -> dict[str, Any]:
    """Text prompts, or precomputed embeddings instead of them (diffusers takes one or the other)."""
    if embeds is None:
        return {"prompt": prompt, "negative_prompt": negative_prompt}
    unknown = set(embeds) - EMBED_KEYS
    if unknown:
        raise ValueError(f"unknown embedding keys {sorted(unknown)}; allowed: {sorted(EMBED_KEYS)}")
    if "prompt_embeds" not in embeds:
        raise ValueError("embeds must contain 'prompt_embeds'")
    return {"prompt": None, "negative_prompt": None, **embeds}


def step_callback(progress: Progress, cancel: CancelCheck) -> Any:
    """A diffusers `callback_on_step_end` that reports progress and raises Cancelled on request.

    Raising (rather than setting `pipe._interrupt`) stops at once: an interrupted diffusers run
    would still decode the VAE and return an image nobody wants.
    """

    def on_step_end(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        progress(step + 1, int(pipeline.num_timesteps))
        if cancel():
            raise Cancelled(f"run cancelled after denoising step {step + 1}")
        return tensors

    return on_step_end


def decode_latents(pipe: Any, latents: torch.Tensor) -> Image.Image:
    """Decode SDXL latents to a PIL image exactly as the pipeline's own decode does.

    Used to save `01_base.png` when the base stops early for the refiner. An fp16 SDXL VAE
    overflows to NaN/black, so when the VAE asks for it (`force_upcast`) it runs in float32 for
    this call and is always put back to float16 afterwards, even on error.
    """
    import torch
    from diffusers.utils.torch_utils import get_module_execution_device

    vae = pipe.vae
    # 1. Decide on the fp16 -> fp32 upcast the same way diffusers does.
    needs_upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    try:
        if needs_upcast:
            vae.to(dtype=torch.float32)
        # 2. Undo the latent normalisation (per-channel mean/std if the VAE defines it).
        # The execution device, not vae.device: with CPU offload the weights rest on the CPU.
        z = latents.to(device=get_module_execution_device(vae), dtype=vae.dtype)
        mean, std, shift = latent_normalisation(vae, z.device)
        if mean is not None and std is not None:
            z = z * std.to(z.dtype) / vae.config.scaling_factor + mean.to(z.dtype)
        else:
            z = z / vae.config.scaling_factor + shift
        # 3. Decode (honours vae tiling if the loader enabled it) and convert to PIL.
        with torch.inference_mode():
            decoded = vae.decode(z, return_dict=False)[0]
        return pipe.image_processor.postprocess(decoded, output_type="pil")[0]
    finally:
        # 4. Leave the shared VAE as we found it.
        if needs_upcast:
            vae.to(dtype=torch.float16)
