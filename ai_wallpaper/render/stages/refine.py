"""Stage 2 (optional): the SDXL refiner finishes what the base started (ensemble of experts).

The base runs the high-noise part of the schedule and stops at `high_noise_frac` with
`output_type="latent"` (see `txt2img.Txt2ImgConfig.denoising_end`); the refiner's img2img
pipeline then runs the low-noise rest from `denoising_start=high_noise_frac`. Both must use the
same scheduler and step count for the two halves of the schedule to meet exactly.

Like txt2img, the shared refiner pipe is never changed: the scheduler goes on a shallow copy.
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
from ai_wallpaper.core.errors import RunError
from ai_wallpaper.render.stages.common import (
    CancelCheck,
    Progress,
    StageConfig,
    bound_problems,
    choice_problems,
    never_cancel,
    no_progress,
    prompt_problems,
    raise_if_cancelled,
)
from ai_wallpaper.render.stages.conditioning import encode_prompts
from ai_wallpaper.render.stages.schedulers import make_scheduler
from ai_wallpaper.render.stages.txt2img import prompt_kwargs, step_callback

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = log.get(__name__)


@dataclass(frozen=True)
class RefineConfig(StageConfig):
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    high_noise_frac: float
    # The refiner finishes the base's schedule, so it samples with the base's guidance and scheduler.
    guidance_scale: float
    scheduler: SchedulerName

    @classmethod
    def from_settings(cls, settings: Settings, *, prompt: str, negative_prompt: str, seed: int) -> RefineConfig:
        r, t = settings.pipeline.refine, settings.pipeline.txt2img
        return cls(prompt=prompt, negative_prompt=negative_prompt, seed=seed, steps=r.steps or t.steps,
                   high_noise_frac=r.high_noise_frac, guidance_scale=t.guidance_scale, scheduler=t.scheduler)

    def problems(self) -> list[str]:
        return [*prompt_problems(self.prompt, self.negative_prompt, self.seed),
                *bound_problems(RefineSettings, "pipeline.refine",
                                {"steps": self.steps, "high_noise_frac": self.high_noise_frac}),
                *bound_problems(Txt2ImgSettings, "pipeline.txt2img", {"guidance_scale": self.guidance_scale}),
                *choice_problems("pipeline.txt2img.scheduler", self.scheduler, SCHEDULER_NAMES)]

    def base_denoising_end(self) -> float:
        """What the base stage's `Txt2ImgConfig.denoising_end` must be for this refiner run."""
        return self.high_noise_frac


def run_refine(
    latents: torch.Tensor,
    refiner_pipe: Any,
    cfg: RefineConfig,
    progress: Progress = no_progress,
    cancel: CancelCheck = never_cancel,
    *,
    embeds: Mapping[str, torch.Tensor] | None = None,
) -> Image.Image:
    """Finish partly denoised base `latents` (1, 4, H/8, W/8) with a StableDiffusionXLImg2ImgPipeline.

    `embeds` (optional) are precomputed embeddings for the refiner's own text encoder; without them the
    prompts are encoded whole with it, A1111 weights honoured (`conditioning.encode_prompts`).
    """
    import torch

    # 1. Check the hand-off: the refiner needs the base's latents, not an image.
    latent_channels = int(refiner_pipe.vae.config.latent_channels)
    if latents.ndim != 4 or latents.shape[0] != 1 or latents.shape[1] != latent_channels:
        raise RunError(f"refiner expects base latents shaped (1, {latent_channels}, H/8, W/8), "
                       f"got {tuple(latents.shape)}",
                       hint="run txt2img with denoising_end=high_noise_frac (output_type='latent')")
    raise_if_cancelled(cancel)

    # 2. A private view of the refiner with a fresh scheduler of the base's kind.
    run_pipe = copy.copy(refiner_pipe)
    run_pipe.scheduler = make_scheduler(cfg.scheduler, refiner_pipe.scheduler.config)

    # 3. Whole, weighted prompts through the refiner's one text encoder (text_encoder_2).
    if embeds is None:
        embeds = encode_prompts(refiner_pipe, cfg.prompt, cfg.negative_prompt).as_kwargs()

    # 4. Seeded CPU generator (the ancestral samplers draw noise at every step).
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)

    # 5. Denoise the low-noise remainder of the schedule and decode.
    logger.info("refine.start", steps=cfg.steps, high_noise_frac=cfg.high_noise_frac,
                scheduler=cfg.scheduler, latent_size=tuple(latents.shape[-2:]))
    # Inference mode covers every model call (no autograd graph is ever kept).
    with torch.inference_mode():
        output = run_pipe(
            **prompt_kwargs(cfg.prompt, cfg.negative_prompt, embeds),
            image=latents,
            num_inference_steps=cfg.steps,
            denoising_start=cfg.high_noise_frac,
            guidance_scale=cfg.guidance_scale,
            generator=generator,
            output_type="pil",
            callback_on_step_end=step_callback(progress, cancel),
            callback_on_step_end_tensor_inputs=["latents"],
        )
    return output.images[0]
