"""txt2img stage and schedulers on the real tiny SDXL pipeline (CPU, small sizes)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import SCHEDULER_NAMES, SEED_MAX
from ai_wallpaper.core.errors import Cancelled
from ai_wallpaper.render.stages.schedulers import make_scheduler
from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig, decode_latents, run_txt2img

W, H = 256, 128


def small(**overrides: Any) -> Txt2ImgConfig:
    cfg = Txt2ImgConfig.from_settings(Settings(), prompt="a lighthouse at dusk", negative_prompt="blurry", seed=7)
    return dataclasses.replace(cfg, **{"width": W, "height": H, "steps": 6, **overrides})


# --- schedulers ----------------------------------------------------------------------------------

def test_dpmpp_2m_karras_is_dpm_solver_pp_order_2_with_karras_sigmas(tiny_pipe: Any) -> None:
    sched = make_scheduler("dpmpp_2m_karras", tiny_pipe.scheduler.config)
    assert type(sched).__name__ == "DPMSolverMultistepScheduler"
    cfg = sched.config
    assert (cfg.algorithm_type, cfg.solver_order, cfg.use_karras_sigmas, cfg.euler_at_final) == \
        ("dpmsolver++", 2, True, True)
    assert cfg.beta_schedule == tiny_pipe.scheduler.config.beta_schedule  # the model's noise schedule kept
    plain = make_scheduler("dpmpp_2m", {**tiny_pipe.scheduler.config, "use_karras_sigmas": True})
    assert plain.config.use_karras_sigmas is False  # explicit, not inherited


@pytest.mark.parametrize(("name", "cls_name"), [
    ("euler", "EulerDiscreteScheduler"), ("euler_a", "EulerAncestralDiscreteScheduler"),
    ("ddim", "DDIMScheduler"), ("dpmpp_2m", "DPMSolverMultistepScheduler"),
])
def test_each_scheduler_name_builds_a_fresh_scheduler(tiny_pipe: Any, name: Any, cls_name: str) -> None:
    first = make_scheduler(name, tiny_pipe.scheduler.config)
    second = make_scheduler(name, tiny_pipe.scheduler.config)
    assert type(first).__name__ == cls_name
    assert first is not second and first is not tiny_pipe.scheduler


def test_unknown_scheduler_name_lists_the_choices(tiny_pipe: Any) -> None:
    with pytest.raises(ValueError, match="unknown scheduler 'dpm_fast'; choose one of: dpmpp_2m_karras"):
        make_scheduler("dpm_fast", tiny_pipe.scheduler.config)  # type: ignore[arg-type]


# --- run_txt2img -----------------------------------------------------------------------------------

def test_same_seed_same_bits_other_seed_other_image(tiny_pipe: Any) -> None:
    a = run_txt2img(tiny_pipe, small()).image
    b = run_txt2img(tiny_pipe, small()).image
    c = run_txt2img(tiny_pipe, small(seed=8)).image
    assert a is not None and b is not None and c is not None
    assert a.size == (W, H) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_runs_and_is_deterministic(tiny_pipe: Any, name: Any) -> None:
    cfg = small(width=64, height=64, steps=3, scheduler=name)
    first, second = run_txt2img(tiny_pipe, cfg), run_txt2img(tiny_pipe, cfg)
    assert first.image is not None and second.image is not None
    assert first.image.tobytes() == second.image.tobytes()


def test_the_shared_pipe_is_not_changed(tiny_pipe: Any) -> None:
    scheduler, config = tiny_pipe.scheduler, dict(tiny_pipe.scheduler.config)
    pipe_config = dict(tiny_pipe.config)
    state = set(vars(tiny_pipe))
    run_txt2img(tiny_pipe, small(steps=2, scheduler="euler_a"))
    assert tiny_pipe.scheduler is scheduler and dict(tiny_pipe.scheduler.config) == config
    assert type(tiny_pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    assert dict(tiny_pipe.config) == pipe_config
    assert set(vars(tiny_pipe)) == state  # no per-call attributes (_guidance_scale, ...) left behind


@contextlib.contextmanager
def inference_spy(pipe: Any) -> Iterator[list[tuple[bool, bool]]]:
    """Records every text-encoder call on `pipe`: (inference mode on, every output an inference
    tensor without grad). The hooks are removed again (the fixture pipe is shared)."""
    seen: list[tuple[bool, bool]] = []

    def hook(module: Any, args: Any, output: Any) -> None:
        values = output.to_tuple() if hasattr(output, "to_tuple") else tuple(output)
        tensors = [t for v in values for t in (v if isinstance(v, tuple) else (v,)) if isinstance(t, torch.Tensor)]
        seen.append((torch.is_inference_mode_enabled(),
                     all(torch.is_inference(t) and not t.requires_grad for t in tensors)))

    encoders = [e for e in (getattr(pipe, "text_encoder", None), pipe.text_encoder_2) if e is not None]
    handles = [e.register_forward_hook(hook) for e in encoders]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def test_prompt_encoding_runs_under_inference_mode(tiny_pipe: Any) -> None:
    with inference_spy(tiny_pipe) as seen:
        run_txt2img(tiny_pipe, small(width=64, height=64, steps=2))
    assert seen and all(s == (True, True) for s in seen)


def test_a_prompt_is_not_cut_at_77_tokens(tiny_pipe: Any) -> None:
    """Two prompts that differ only after token 80 give different images; the same one gives the same bits."""
    head = "a lighthouse at dusk " * 6  # 102 byte-level tokens with the tiny model's tokenizer
    assert len(tiny_pipe.tokenizer(head).input_ids) - 2 > 80
    cfg = small(width=64, height=64, steps=3)
    first = run_txt2img(tiny_pipe, dataclasses.replace(cfg, prompt=head + "with red boats")).image
    again = run_txt2img(tiny_pipe, dataclasses.replace(cfg, prompt=head + "with red boats")).image
    other = run_txt2img(tiny_pipe, dataclasses.replace(cfg, prompt=head + "with blue gulls")).image
    assert first is not None and again is not None and other is not None
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_progress_reports_every_step(tiny_pipe: Any) -> None:
    seen: list[tuple[int, int]] = []
    run_txt2img(tiny_pipe, small(steps=4), progress=lambda s, n: seen.append((s, n)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_cancel_mid_run_raises_and_stops_denoising(tiny_pipe: Any) -> None:
    seen: list[int] = []
    with pytest.raises(Cancelled, match="after denoising step 2"):
        run_txt2img(tiny_pipe, small(steps=6), progress=lambda s, n: seen.append(s),
                    cancel=lambda: len(seen) >= 2)
    assert seen == [1, 2]


def test_cancel_before_start_runs_nothing(tiny_pipe: Any) -> None:
    seen: list[int] = []
    with pytest.raises(Cancelled):
        run_txt2img(tiny_pipe, small(), progress=lambda s, n: seen.append(s), cancel=lambda: True)
    assert seen == []


def test_denoising_end_returns_latents_for_the_refiner(tiny_pipe: Any) -> None:
    seen: list[tuple[int, int]] = []
    result = run_txt2img(tiny_pipe, small(steps=10, denoising_end=0.8),
                         progress=lambda s, n: seen.append((s, n)))
    assert result.image is None and result.latents is not None
    assert tuple(result.latents.shape) == (1, 4, H // 8, W // 8)
    assert 0 < seen[-1][1] < 10 and seen[-1][0] == seen[-1][1]  # stopped early, counted honestly


def test_decode_latents_matches_the_pipelines_own_decode(tiny_pipe: Any) -> None:
    pipe = copy.copy(tiny_pipe)  # calling a pipe sets per-call attributes: keep them off the fixture
    kwargs = {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 2}
    latents = pipe(**kwargs, generator=torch.Generator().manual_seed(1), output_type="latent").images
    image = pipe(**kwargs, generator=torch.Generator().manual_seed(1), output_type="pil").images[0]
    assert decode_latents(tiny_pipe, latents).tobytes() == image.tobytes()


def test_decode_latents_upcasts_an_fp16_vae_and_puts_it_back(tiny_pipe: Any) -> None:
    pipe = copy.copy(tiny_pipe)
    pipe.vae = copy.deepcopy(tiny_pipe.vae).to(torch.float16)
    assert pipe.vae.config.force_upcast
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    image = decode_latents(pipe, latents)
    assert image.size == (64, 64)
    assert pipe.vae.dtype == torch.float16
    # fp32 decode of fp16-rounded weights: close to the fp32 VAE's decode.
    reference = torch.from_numpy(np.asarray(decode_latents(tiny_pipe, latents), dtype=np.float32))
    got = torch.from_numpy(np.asarray(image, dtype=np.float32))
    assert (reference - got).abs().mean() < 2.0
    with pytest.raises(RuntimeError):  # a failing decode still restores fp16
        decode_latents(pipe, torch.randn(1, 3, 8, 8))
    assert pipe.vae.dtype == torch.float16


def test_precomputed_embeddings_give_the_same_image_as_the_text(tiny_pipe: Any) -> None:
    cfg = small(steps=3)
    pe, npe, pooled, npooled = tiny_pipe.encode_prompt(
        cfg.prompt, device=torch.device("cpu"), num_images_per_prompt=1, do_classifier_free_guidance=True,
        negative_prompt=cfg.negative_prompt)
    embeds = {"prompt_embeds": pe, "negative_prompt_embeds": npe, "pooled_prompt_embeds": pooled,
              "negative_pooled_prompt_embeds": npooled}
    from_text = run_txt2img(tiny_pipe, cfg).image
    from_embeds = run_txt2img(tiny_pipe, cfg, embeds=embeds).image
    assert from_text is not None and from_embeds is not None
    assert from_text.tobytes() == from_embeds.tobytes()
    with pytest.raises(ValueError, match="unknown embedding keys"):
        run_txt2img(tiny_pipe, cfg, embeds={**embeds, "prompt_embedz": pe})


@pytest.mark.parametrize(("overrides", "message"), [
    ({"width": 100}, r"pipeline\.txt2img\.width: must be a multiple of 8, got 100; use 96 or 104"),
    ({"height": 32}, r"pipeline\.txt2img\.height: must be >= 64, got 32"),
    ({"steps": 0}, r"pipeline\.txt2img\.steps: must be >= 1"),
    ({"steps": 2.5}, r"pipeline\.txt2img\.steps: must be an integer, got 2\.5"),
    ({"guidance_scale": -1.0}, r"pipeline\.txt2img\.guidance_scale: must be >= 0"),
    ({"guidance_scale": float("nan")}, r"pipeline\.txt2img\.guidance_scale: must be a finite number, got nan"),
    ({"scheduler": "heun"}, r"pipeline\.txt2img\.scheduler: must be one of dpmpp_2m_karras, .*got 'heun'"),
    ({"denoising_end": 1.0}, r"pipeline\.refine\.high_noise_frac: must be <= 0\.95, got 1\.0"),
    ({"seed": -1}, r"seed: must be an integer from 0 to 2\*\*63-1, got -1"),
    ({"seed": SEED_MAX + 1}, "seed: must be an integer from 0"),
    ({"prompt": None}, "prompt: must be a string, got NoneType"),
])
def test_config_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small(**overrides)


def test_config_lists_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as err:
        small(width=100, steps=0, scheduler="heun", seed=-1)
    keys = [line.split(": ")[0].strip(" -") for line in str(err.value).splitlines()[1:]]
    assert keys == ["seed", "pipeline.txt2img.width", "pipeline.txt2img.steps", "pipeline.txt2img.scheduler"]


def test_config_hands_off_to_the_refiner_only_when_there_is_one() -> None:
    settings = Settings()
    cfg = Txt2ImgConfig.from_settings(settings, prompt="p", negative_prompt="n", seed=1)
    assert cfg.denoising_end is None and cfg.steps == settings.pipeline.txt2img.steps
    with_refiner = dataclasses.replace(settings, models=dataclasses.replace(settings.models, refiner="builtin:x"))
    cfg = Txt2ImgConfig.from_settings(with_refiner, prompt="p", negative_prompt="n", seed=1)
    assert cfg.denoising_end == settings.pipeline.refine.high_noise_frac
