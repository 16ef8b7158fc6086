"""Refine stage: SDXL ensemble of experts on the real tiny base + refiner pipelines (CPU)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core.errors import Cancelled, RunError
from ai_wallpaper.render.stages.refine import RefineConfig, run_refine
from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig, decode_latents, run_txt2img
from tests.render.test_stage_txt2img import inference_spy

W, H, STEPS = 256, 128, 6


def refine_cfg(**overrides: Any) -> RefineConfig:
    cfg = RefineConfig.from_settings(Settings(), prompt="a lighthouse at dusk", negative_prompt="blurry", seed=7)
    return dataclasses.replace(cfg, **{"steps": STEPS, **overrides})


def base_latents(pipe: Any, cfg: RefineConfig, progress: Any = None) -> torch.Tensor:
    t2i = Txt2ImgConfig.from_settings(Settings(), prompt=cfg.prompt, negative_prompt=cfg.negative_prompt,
                                      seed=cfg.seed)
    t2i = dataclasses.replace(t2i, width=W, height=H, steps=cfg.steps, guidance_scale=cfg.guidance_scale,
                              scheduler=cfg.scheduler, denoising_end=cfg.base_denoising_end())
    result = run_txt2img(pipe, t2i, progress or (lambda s, n: None))
    assert result.latents is not None
    return result.latents


@pytest.mark.parametrize("scheduler", ["dpmpp_2m_karras", "euler_a"])
def test_ensemble_of_experts_splits_the_schedule_and_is_deterministic(
        tiny_pipe: Any, tiny_refiner_pipe: Any, scheduler: Any) -> None:
    cfg = refine_cfg(scheduler=scheduler)
    base_steps: list[tuple[int, int]] = []
    refine_steps: list[tuple[int, int]] = []
    latents = base_latents(tiny_pipe, cfg, lambda s, n: base_steps.append((s, n)))
    image = run_refine(latents, tiny_refiner_pipe, cfg, progress=lambda s, n: refine_steps.append((s, n)))
    again = run_refine(latents, tiny_refiner_pipe, cfg)
    assert image.size == (W, H)
    assert image.tobytes() == again.tobytes()
    # The base ran the high-noise part, the refiner the rest: together exactly `steps`, none twice.
    assert base_steps[-1][1] + refine_steps[-1][1] == STEPS
    assert 0 < refine_steps[-1][1] < base_steps[-1][1]
    # The refiner really changed the image (it is not just a decode of the base latents).
    unrefined = np.asarray(decode_latents(tiny_pipe, latents), dtype=np.float32)
    assert np.abs(np.asarray(image, dtype=np.float32) - unrefined).mean() > 1.0


def test_the_shared_refiner_pipe_is_not_changed(tiny_pipe: Any, tiny_refiner_pipe: Any) -> None:
    cfg = refine_cfg(steps=3, scheduler="ddim")
    latents = base_latents(tiny_pipe, cfg)
    scheduler, config, state = tiny_refiner_pipe.scheduler, dict(tiny_refiner_pipe.scheduler.config), \
        set(vars(tiny_refiner_pipe))
    run_refine(latents, tiny_refiner_pipe, cfg)
    assert tiny_refiner_pipe.scheduler is scheduler and dict(scheduler.config) == config
    assert set(vars(tiny_refiner_pipe)) == state


def test_prompt_encoding_runs_under_inference_mode(tiny_pipe: Any, tiny_refiner_pipe: Any) -> None:
    cfg = refine_cfg(steps=3)
    latents = base_latents(tiny_pipe, cfg)
    with inference_spy(tiny_refiner_pipe) as seen:
        run_refine(latents, tiny_refiner_pipe, cfg)
    assert seen and all(s == (True, True) for s in seen)


def test_the_refiner_reads_the_whole_prompt(tiny_pipe: Any, tiny_refiner_pipe: Any) -> None:
    """The refiner has one text encoder (text_encoder_2); text after token 80 still changes its image."""
    cfg = refine_cfg(steps=4)
    latents = base_latents(tiny_pipe, cfg)
    head = "a lighthouse at dusk " * 6  # 102 byte-level tokens
    first = run_refine(latents, tiny_refiner_pipe, dataclasses.replace(cfg, prompt=head + "with red boats"))
    again = run_refine(latents, tiny_refiner_pipe, dataclasses.replace(cfg, prompt=head + "with red boats"))
    other = run_refine(latents, tiny_refiner_pipe, dataclasses.replace(cfg, prompt=head + "with blue gulls"))
    assert first.tobytes() == again.tobytes() != other.tobytes()


def test_cancel_during_refine(tiny_pipe: Any, tiny_refiner_pipe: Any) -> None:
    cfg = refine_cfg(steps=10, high_noise_frac=0.5)
    latents = base_latents(tiny_pipe, cfg)
    seen: list[int] = []
    with pytest.raises(Cancelled, match="after denoising step 1"):
        run_refine(latents, tiny_refiner_pipe, cfg, progress=lambda s, n: seen.append(s),
                   cancel=lambda: bool(seen))
    assert seen == [1]


def test_an_image_instead_of_latents_is_a_clear_error(tiny_refiner_pipe: Any) -> None:
    expected = r"expects base latents shaped \(1, 4, H/8, W/8\), got \(1, 3, 128, 256\)"
    with pytest.raises(RunError, match=expected):
        run_refine(torch.zeros(1, 3, 128, 256), tiny_refiner_pipe, refine_cfg())


@pytest.mark.parametrize(("overrides", "message"), [
    ({"steps": 0}, r"pipeline\.refine\.steps: must be >= 1, got 0"),
    ({"high_noise_frac": 1.0}, r"pipeline\.refine\.high_noise_frac: must be <= 0\.95, got 1\.0"),
    ({"high_noise_frac": 0.0}, r"pipeline\.refine\.high_noise_frac: must be >= 0\.05, got 0\.0"),
    ({"guidance_scale": -0.5}, r"pipeline\.txt2img\.guidance_scale: must be >= 0"),
    ({"scheduler": "lms"}, r"pipeline\.txt2img\.scheduler: must be one of .*got 'lms'"),
    ({"seed": -3}, "seed: must be an integer from 0"),
])
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        refine_cfg(**overrides)
