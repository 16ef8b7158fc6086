"""Adaptive refinement (pipeline.refine.adaptive): try several base -> refiner switch points and keep the
refined image with the best quality score.

Where the base hands over to the refiner (high_noise_frac) trades the base's composition against the
refiner's fine detail, and the best point differs from prompt to prompt. Each try runs the base to its
switch point and the refiner from it, with the same seed; the score (render/quality.py `quality_score`)
rewards detail (Laplacian variance) after discounting what noise explains, so a grainy or a soft result
loses. Every try is returned for run.json; the first best wins a tie, so the choice is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ai_wallpaper.core import log
from ai_wallpaper.render.quality import measure, quality_score
from ai_wallpaper.render.stages.common import CancelCheck, Progress, raise_if_cancelled
from ai_wallpaper.render.stages.refine import RefineConfig
from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from ai_wallpaper.scene.plan import LoraChoice

logger = log.get(__name__)


@dataclass(frozen=True)
class Choice:
    high_noise_frac: float
    latents: torch.Tensor  # the base's hand-off at the chosen point (saved for --resume)
    image: Image.Image  # the refined image at that point
    tries: list[dict[str, Any]]  # every try: high_noise_frac, score and the quality figures


def best_switch_point(fracs: Sequence[float], t2i: Txt2ImgConfig, refine: RefineConfig,
                      base: Callable[[Txt2ImgConfig], torch.Tensor],
                      refiner: Callable[[torch.Tensor, RefineConfig], Image.Image],
                      cancel: CancelCheck) -> Choice:
    """Run base(t2i at frac) -> refiner(latents, refine at frac) for each frac; keep the best score."""
    best: Choice | None = None
    best_score = float("-inf")
    tries: list[dict[str, Any]] = []
    for frac in fracs:
        raise_if_cancelled(cancel)
        latents = base(replace(t2i, denoising_end=frac))
        image = refiner(latents, replace(refine, high_noise_frac=frac))
        figures = measure(image)
        score = quality_score(figures)
        tries.append({"high_noise_frac": frac, **figures.to_json()})  # to_json includes the score
        logger.info("adaptive refine try", high_noise_frac=frac, score=round(score, 3))
        if score > best_score:  # strictly: the first of equal scores stays
            best, best_score = Choice(frac, latents, image, tries), score
    if best is None:
        raise ValueError("adaptive refinement needs at least one switch point")
    return replace(best, tries=tries)


def try_switch_points(pipe: Any, refiner_pipe: Any, loras: Sequence[LoraChoice], fracs: Sequence[float],
                      t2i: Txt2ImgConfig, refine: RefineConfig, progress: Progress, cancel: CancelCheck) -> Choice:
    """best_switch_point with the real stages: the base with the LoRA stack (as the base stage runs
    it), the refiner without (SDXL LoRAs do not fit it)."""
    from ai_wallpaper.render.lora_apply import applied_loras
    from ai_wallpaper.render.stages.refine import run_refine
    from ai_wallpaper.render.stages.txt2img import run_txt2img

    def base(cfg: Txt2ImgConfig) -> torch.Tensor:
        with applied_loras(pipe, loras):
            latents = run_txt2img(pipe, cfg, progress, cancel).latents
        assert latents is not None  # denoising_end is set: the base hands over latents
        return latents

    return best_switch_point(fracs, t2i, refine, base,
                             lambda latents, cfg: run_refine(latents, refiner_pipe, cfg, cancel=cancel), cancel)
