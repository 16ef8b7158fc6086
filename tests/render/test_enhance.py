"""The 8K enhancement stage on the tiny random SDXL (CPU, small images: 512x256 / 768x384, tile 256)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from structlog.testing import capture_logs

from ai_wallpaper.config.settings import Settings, settings_from_dict
from ai_wallpaper.config.vocabulary import SCHEDULER_NAMES
from ai_wallpaper.core.errors import Cancelled
from ai_wallpaper.render.devices import VAE_TILE_PX
from ai_wallpaper.render.stages import enhance as E
from ai_wallpaper.render.stages import enhance_denoise as D
from ai_wallpaper.render.stages.enhance import EnhanceConfig, run_enhance
from ai_wallpaper.render.stages.tiling import TileBox, blend_weights, seam_score, tile_grid
from ai_wallpaper.render.stages.vae import vae_mode, vae_pass
from tests.render.test_stage_txt2img import inference_spy

CPU = torch.device("cpu")
TILE, OVERLAP = 256, 64


def smooth_image(width: int, height: int) -> Image.Image:
    yy, xx = np.mgrid[0:height, 0:width]
    diagonal = (xx + yy) / (width + height) * 120 + 60
    rgb = np.stack([xx / width * 180 + 30, yy / height * 160 + 40, diagonal], -1)
    return Image.fromarray(rgb.astype(np.uint8))


def config(**over: Any) -> EnhanceConfig:
    cfg = EnhanceConfig.from_settings(Settings(), prompt="a calm lake at dawn", negative_prompt="blurry", seed=7)
    return dataclasses.replace(cfg, **{"tile": TILE, "overlap": OVERLAP, "steps": 10, "batch_size": 3, **over})


def identity_denoiser(clean: torch.Tensor, alphas_cumprod: torch.Tensor) -> D.Denoiser:
    """Predicts exactly the noise in its input: for epsilon prediction on the VP-scaled model input
    z_t = sqrt(a) z0 + sqrt(1-a) eps  =>  eps = (z_t - sqrt(a) z0) / sqrt(1-a)."""

    def denoise(sample: torch.Tensor, t: torch.Tensor, boxes: Sequence[TileBox]) -> torch.Tensor:
        a = alphas_cumprod[round(float(t))].double()
        z0 = torch.cat([clean[(..., *b.slices())] for b in boxes]).double()
        return ((sample.double() - a.sqrt() * z0) / (1 - a).sqrt()).float()

    return denoise


class CountingPipe:
    """The real pipe, with prompt encodings (`conditioning.encode_prompts` calls on it) counted."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self.encode_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


@pytest.fixture(autouse=True)
def _count_encodings(monkeypatch: pytest.MonkeyPatch) -> None:
    real = D.encode_prompts

    def counting(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(pipe, CountingPipe):
            pipe.encode_calls += 1
        return real(pipe, *args, **kwargs)

    monkeypatch.setattr(D, "encode_prompts", counting)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return smooth_image(768, 384)


@pytest.fixture(scope="module")
def enhanced(tiny_pipe: Any, image: Image.Image) -> Image.Image:
    return run_enhance(image, tiny_pipe, config(batch_size=3))


def test_strength_zero_returns_input_pixels_and_loads_nothing(tiny_pipe: Any, image: Image.Image) -> None:
    counting = CountingPipe(tiny_pipe)
    for strength in (0.0, 0.09):  # 0.09 x 10 steps < 1 step: nothing to run either
        out = run_enhance(image, counting, config(strength=strength))
        assert out is not image
        np.testing.assert_array_equal(np.asarray(out), np.asarray(image))
    assert counting.encode_calls == 0


def _identity_setup(pipe: Any, image: Image.Image, scheduler_name: Any) -> tuple[torch.Tensor, Any, torch.Tensor]:
    clean = E.encode_image(pipe, image, CPU, "auto")
    scheduler = D.fresh_scheduler(pipe, scheduler_name)
    timesteps = D.img2img_timesteps(scheduler, 10, 0.5, CPU)
    return clean, scheduler, timesteps


# Every sampler, the ancestral one included: its per-step noise is re-predicted exactly by the
# identity denoiser and its last step adds none. (DDIM is exact here because the tiny scheduler
# config leaves set_alpha_to_one at True; SDXL's own says False and keeps ~3% of the last noise.)
@pytest.mark.parametrize(("blend", "scheduler_name"), [
    ("gaussian", "euler"), ("cosine", "euler"), ("gaussian", "euler_a"), ("cosine", "dpmpp_2m_karras"),
    ("gaussian", "dpmpp_2m"), ("cosine", "ddim"),
])
def test_identity_denoiser_returns_clean_latents(tiny_pipe: Any, image: Image.Image, blend: str,
                                                 scheduler_name: str) -> None:
    clean, scheduler, timesteps = _identity_setup(tiny_pipe, image, scheduler_name)
    assert len(timesteps) == 5
    generator = torch.Generator().manual_seed(1)
    noisy = D.add_seeded_noise(scheduler, clean, timesteps[:1], generator)
    assert (noisy - clean).abs().mean() > 10 * clean.abs().mean()  # really noised
    boxes = tile_grid(clean.shape[-2], clean.shape[-1], TILE // 8, OVERLAP // 8)
    weights = blend_weights(TILE // 8, TILE // 8, blend, overlap=OVERLAP // 8)
    out = D.denoise_tiled(noisy, timesteps, scheduler, identity_denoiser(clean, scheduler.alphas_cumprod),
                          boxes, weights, 2, generator)
    # A doubled accumulator, feathered (un-normalised) borders or a per-tile step would leave
    # noise of order 1 here; clean latents have std ~0.05 on the tiny VAE.
    torch.testing.assert_close(out, clean, atol=2e-5, rtol=0)


def test_identity_denoiser_with_dpm_solver(tiny_pipe: Any, image: Image.Image) -> None:
    """The same on the txt2img default family (DPM++ 2M), built beside the shared pipe, not in it."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionXLPipeline

    dpm = DPMSolverMultistepScheduler.from_config(tiny_pipe.scheduler.config)
    pipe: Any = StableDiffusionXLPipeline(**{**tiny_pipe.components, "scheduler": dpm})
    pipe.set_progress_bar_config(disable=True)
    clean = E.encode_image(pipe, image, CPU, "auto")
    den = identity_denoiser(clean, D.fresh_scheduler(pipe).alphas_cumprod)
    out = run_enhance(image, pipe, config(strength=0.5, blend="cosine"), denoiser=den)
    expected = E.decode_latents(pipe, clean, "auto")
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert diff.max() <= 1


def test_identity_run_equals_vae_round_trip(tiny_pipe: Any, image: Image.Image) -> None:
    clean = E.encode_image(tiny_pipe, image, CPU, "auto")
    den = identity_denoiser(clean, D.fresh_scheduler(tiny_pipe).alphas_cumprod)
    out = run_enhance(image, tiny_pipe, config(strength=0.5), denoiser=den)
    round_trip = E.decode_latents(tiny_pipe, clean, "auto")
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(round_trip, dtype=np.int16))
    assert diff.max() <= 1, "the pixel output equals the plain VAE round trip within rounding"
    # and the stage did not silently fall back to returning its input
    assert np.abs(np.asarray(out, dtype=np.int16) - np.asarray(image, dtype=np.int16)).mean() > 5


def test_real_run_has_no_seams_but_a_naive_paste_does(tiny_pipe: Any, image: Image.Image,
                                                      enhanced: Image.Image) -> None:
    boxes = tile_grid(384, 768, TILE, OVERLAP)
    changed = np.abs(np.asarray(enhanced, dtype=np.int16) - np.asarray(image, dtype=np.int16)).mean()
    assert changed > 5
    blended = seam_score(enhanced, boxes)
    assert 0.87 < blended < 1.15
    # The peers' way: img2img each tile on its own and paste the pixels (no blending).
    pasted = np.zeros((384, 768, 3), dtype=np.uint8)
    for i, box in enumerate(boxes):
        crop = image.crop((box.x, box.y, box.right, box.bottom))
        pasted[box.slices()] = np.asarray(run_enhance(crop, tiny_pipe, config(seed=7 + i)))
    naive = seam_score(pasted, boxes)
    assert naive > 1.25 and naive > blended + 0.2


def test_batch_size_does_not_change_the_result(tiny_pipe: Any, image: Image.Image,
                                               enhanced: Image.Image) -> None:
    one = np.asarray(run_enhance(image, tiny_pipe, config(batch_size=1)), dtype=np.int16)
    three = np.asarray(enhanced, dtype=np.int16)
    # On CPU the UNet itself is not bit-identical across batch sizes (~1e-6 in its output), so
    # the accumulation order is fixed and a rare pixel may round the other way: at most 1 LSB.
    diff = np.abs(one - three)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.01


def test_deterministic_and_seed_sensitive(tiny_pipe: Any, image: Image.Image, enhanced: Image.Image) -> None:
    again = run_enhance(image, tiny_pipe, config(batch_size=3))
    np.testing.assert_array_equal(np.asarray(again), np.asarray(enhanced))
    other = run_enhance(image, tiny_pipe, config(batch_size=3, seed=8))
    assert np.abs(np.asarray(other, dtype=np.int16) - np.asarray(enhanced, dtype=np.int16)).mean() > 1


def test_ancestral_sampler_is_seeded_and_independent_of_batch_size(tiny_pipe: Any) -> None:
    image = smooth_image(512, 256)
    rng = torch.get_rng_state()
    first = np.asarray(run_enhance(image, tiny_pipe, config(scheduler="euler_a", batch_size=3)), dtype=np.int16)
    again = np.asarray(run_enhance(image, tiny_pipe, config(scheduler="euler_a", batch_size=3)), dtype=np.int16)
    one = np.asarray(run_enhance(image, tiny_pipe, config(scheduler="euler_a", batch_size=1)), dtype=np.int16)
    other = np.asarray(run_enhance(image, tiny_pipe, config(scheduler="euler_a", seed=8)), dtype=np.int16)
    # Every draw (initial noise and the sampler's per-step noise) came from the run's own generator.
    assert torch.equal(torch.get_rng_state(), rng)
    np.testing.assert_array_equal(again, first)
    diff = np.abs(one - first)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # the tolerance of the batch-size test above
    assert np.abs(other - first).mean() > 1


def test_each_scheduler_gives_its_own_image_and_is_logged(tiny_pipe: Any) -> None:
    image = smooth_image(512, 256)
    with capture_logs() as logs:
        outs = {name: np.asarray(run_enhance(image, tiny_pipe, config(scheduler=name)), dtype=np.int16)
                for name in SCHEDULER_NAMES}
    started = [(e["scheduler"], e["scheduler_class"]) for e in logs if e["event"] == "enhance.start"]
    assert started == [("dpmpp_2m_karras", "DPMSolverMultistepScheduler"),
                       ("dpmpp_2m", "DPMSolverMultistepScheduler"), ("euler", "EulerDiscreteScheduler"),
                       ("euler_a", "EulerAncestralDiscreteScheduler"), ("ddim", "DDIMScheduler")]
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(outs[a] - outs[b]).mean() > 2, (a, b)


def test_null_scheduler_means_the_txt2img_scheduler(tiny_pipe: Any) -> None:
    def cfg(settings: Settings) -> EnhanceConfig:
        made = EnhanceConfig.from_settings(settings, prompt="a calm lake", negative_prompt="", seed=7)
        return dataclasses.replace(made, tile=TILE, overlap=OVERLAP, steps=10, batch_size=3)

    default = Settings()
    assert default.pipeline.enhance.scheduler is None
    assert cfg(default).scheduler == default.pipeline.txt2img.scheduler
    following = cfg(settings_from_dict({"pipeline": {"txt2img": {"scheduler": "euler_a"},
                                                     "enhance": {"scheduler": None}}}))
    explicit = cfg(settings_from_dict({"pipeline": {"enhance": {"scheduler": "euler_a"}}}))
    assert following.scheduler == explicit.scheduler == "euler_a"
    image = smooth_image(512, 256)
    assert run_enhance(image, tiny_pipe, following).tobytes() == run_enhance(image, tiny_pipe, explicit).tobytes()


def test_prompt_is_encoded_under_inference_mode(tiny_pipe: Any) -> None:
    with inference_spy(tiny_pipe) as seen:
        cond = D.encode_conditioning(tiny_pipe, "a calm lake", "blurry", 5.0, (TILE, TILE), CPU)
    assert seen and all(s == (True, True) for s in seen)
    for t in (cond.embeds, cond.pooled, cond.time_ids):
        assert torch.is_inference(t) and not t.requires_grad


def test_the_whole_weighted_prompt_conditions_the_tiles(tiny_pipe: Any) -> None:
    """The enhancement encodes like txt2img: a long prompt whole, A1111 weights honoured, one shared encoder."""
    from ai_wallpaper.render.stages.conditioning import encode_prompts

    long = "a calm lake at dawn " * 6 + "with (red:1.3) boats"
    cond = D.encode_conditioning(tiny_pipe, long, "blurry", 5.0, (TILE, TILE), CPU)
    enc = encode_prompts(tiny_pipe, long, "blurry")
    assert cond.embeds.shape[1] == enc.prompt_embeds.shape[1] > 77
    assert torch.equal(cond.embeds, torch.cat([enc.negative_prompt_embeds, enc.prompt_embeds]))
    no_negative = D.encode_conditioning(tiny_pipe, long, "", 5.0, (TILE, TILE), CPU)
    assert not no_negative.embeds[0].any() and not no_negative.pooled[0].any()  # diffusers' zeros


def test_prompt_encoded_once_progress_and_pipe_untouched(tiny_pipe: Any) -> None:
    counting = CountingPipe(tiny_pipe)
    sched = tiny_pipe.scheduler
    before = (sched.num_inference_steps, getattr(sched, "_begin_index", None), tiny_pipe.vae.use_tiling)
    calls: list[tuple[int, int]] = []
    out = run_enhance(smooth_image(512, 256), counting, config(batch_size=2),
                      progress=lambda done, total: calls.append((done, total)))
    assert out.size == (512, 256)
    assert counting.encode_calls == 1  # 3 tiles x 3 steps x CFG, one prompt encoding
    # 3 tiles in batches of 2 -> 2 batches per step, 3 steps run (int(10 * 0.35))
    assert calls == [(i, 6) for i in range(1, 7)]
    after = (sched.num_inference_steps, getattr(sched, "_begin_index", None), tiny_pipe.vae.use_tiling)
    assert after == before


def test_cancel_between_batches(tiny_pipe: Any) -> None:
    seen: list[int] = []

    def cancel() -> bool:
        return len(seen) >= 2

    with pytest.raises(Cancelled):
        run_enhance(smooth_image(512, 256), tiny_pipe, config(batch_size=1),
                    progress=lambda done, total: seen.append(done), cancel=cancel)
    assert seen == [1, 2]


def test_auto_batch_size_bounded_and_balanced(tiny_pipe: Any) -> None:
    sdxl = SimpleNamespace(dtype=torch.float16, config=SimpleNamespace(block_out_channels=[320, 640, 1280]))
    # 8K job: 50 tiles of 128x128 latents with CFG; ~1.34 GB estimated per tile.
    assert D.auto_batch_size(50, 128 * 128, sdxl, 2, 80 * 2**30) == 13  # cap 16 -> 4 balanced batches
    assert D.auto_batch_size(50, 128 * 128, sdxl, 2, 4 * 2**30) == 1
    assert D.auto_batch_size(3, 32 * 32, tiny_pipe.unet, 2, 24 * 2**30) == 3
    out = run_enhance(smooth_image(512, 256), tiny_pipe, config(batch_size=None, steps=3))
    assert out.size == (512, 256)


def test_from_settings_maps_auto_batch() -> None:
    e = Settings().pipeline.enhance
    cfg = EnhanceConfig.from_settings(Settings(), prompt="p", negative_prompt="n", seed=3)
    assert (cfg.tile, cfg.overlap, cfg.strength, cfg.steps) == (e.tile, e.overlap, e.strength, e.steps)
    assert e.batch_size == "auto" and cfg.batch_size is None
    assert cfg.steps_to_run == int(e.steps * e.strength)


@pytest.mark.parametrize(("over", "message"), [
    ({"tile": 100}, r"pipeline\.enhance\.tile: must be a multiple of 64, got 100; use 64 or 128"),
    ({"overlap": 60}, r"pipeline\.enhance\.overlap: must be a multiple of 8, got 60; use 56 or 64"),
    ({"overlap": 256}, r"pipeline\.enhance\.overlap: must be less than tile \(256\), got 256; use at most 248"),
    ({"strength": 1.5}, r"pipeline\.enhance\.strength: must be <= 1\.0, got 1\.5"),
    ({"steps": 0}, r"pipeline\.enhance\.steps: must be >= 1"),
    ({"guidance_scale": float("nan")}, r"pipeline\.enhance\.guidance_scale: must be a finite number, got nan"),
    ({"blend": "box"}, r"pipeline\.enhance\.blend: must be one of gaussian, cosine, got 'box'"),
    ({"scheduler": "heun"}, r"pipeline\.enhance\.scheduler: must be one of dpmpp_2m_karras, .*got 'heun'"),
    ({"scheduler": None}, r"pipeline\.enhance\.scheduler: must be one of dpmpp_2m_karras, .*got None"),
    ({"batch_size": 0}, r"pipeline\.enhance\.batch_size: must be >= 1, got 0"),
    ({"seed": -1}, r"seed: must be an integer from 0 to 2\*\*63-1"),
    ({"seed": 2**63}, r"seed: must be an integer from 0 to 2\*\*63-1"),
])
def test_bad_config_errors(over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**over)


def test_bad_config_lists_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as err:
        config(tile=100, strength=1.5, blend="box", seed=-1)
    keys = [line.split(": ")[0].strip(" -") for line in str(err.value).splitlines()[1:]]
    assert keys == ["seed", "pipeline.enhance.tile", "pipeline.enhance.strength", "pipeline.enhance.blend"]


def test_settings_and_stage_share_the_overlap_rule() -> None:
    from ai_wallpaper.config.settings import settings_from_dict
    from ai_wallpaper.core.errors import ConfigError

    with pytest.raises(ConfigError) as schema:
        settings_from_dict({"pipeline": {"enhance": {"tile": 256, "overlap": 256}}})
    with pytest.raises(ValueError) as stage:
        config(tile=256, overlap=256)
    expected = "must be less than tile (256), got 256"
    assert expected in str(schema.value) and expected in str(stage.value)


def test_settings_name_a_bad_enhance_scheduler() -> None:
    from ai_wallpaper.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"pipeline\.enhance\.scheduler: expected one of 'dpmpp_2m_karras'.*"
                                          r"or null, got 'heun'"):
        settings_from_dict({"pipeline": {"enhance": {"scheduler": "heun"}}})


def test_bad_images_and_models(tiny_pipe: Any, tiny_refiner_pipe: Any) -> None:
    with pytest.raises(ValueError, match=r"image size 516x256: both sides must be multiples of 8"):
        run_enhance(smooth_image(516, 256), tiny_pipe, config())
    too_small = r"pipeline\.enhance\.tile: 256 is larger than the image.*at most 192"
    with pytest.raises(ValueError, match=too_small):
        run_enhance(smooth_image(512, 192), tiny_pipe, config())
    with pytest.raises(ValueError, match=r"needs an SDXL base UNet.*Use models\.base"):
        run_enhance(smooth_image(512, 256), tiny_refiner_pipe, config())


def test_tiled_vae_path_keeps_identity_and_restores_vae(tiny_pipe: Any) -> None:
    """8K images go through the tiled VAE (auto); force that path on a small image with "always"."""
    image = smooth_image(512, 256)
    clean = E.encode_image(tiny_pipe, image, CPU, "always")
    den = identity_denoiser(clean, D.fresh_scheduler(tiny_pipe).alphas_cumprod)
    out = run_enhance(image, tiny_pipe, config(strength=0.5, vae_tiling="always"), denoiser=den)
    round_trip = E.decode_latents(tiny_pipe, clean, "always")
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(round_trip, dtype=np.int16))
    assert diff.max() <= 1
    assert tiny_pipe.vae.use_tiling is False


def test_fp16_vae_that_is_not_fp16_safe_runs_in_fp32_and_is_restored(tiny_pipe: Any) -> None:
    import copy

    vae = copy.deepcopy(tiny_pipe.vae).to(torch.float16)
    assert vae.config.force_upcast
    own_tile = vae.tile_sample_min_size
    with vae_mode(vae, True) as dtype:
        assert dtype == torch.float32 and vae.dtype == torch.float32 and vae.use_tiling
        assert vae.tile_sample_min_size == VAE_TILE_PX
    assert vae.dtype == torch.float16 and not vae.use_tiling and vae.tile_sample_min_size == own_tile


@pytest.mark.parametrize(("setting", "calls", "tiled"), [
    ("auto", [False, True], True),  # whole first; the out-of-memory error is retried tiled
    ("never", [False], None),  # the user said never: the error stands
])
def test_an_untiled_vae_pass_that_runs_out_of_memory(tiny_pipe: Any, setting: str, calls: list[bool],
                                                     tiled: bool | None) -> None:
    seen: list[bool] = []

    def run(dtype: torch.dtype) -> str:
        seen.append(bool(tiny_pipe.vae.use_tiling))
        if not tiny_pipe.vae.use_tiling:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return "decoded"

    if tiled is None:
        with pytest.raises(torch.OutOfMemoryError):
            vae_pass(tiny_pipe.vae, setting, 1920 * 1024, run)
    else:
        assert vae_pass(tiny_pipe.vae, setting, 1920 * 1024, run) == ("decoded", tiled)
    assert seen == calls and tiny_pipe.vae.use_tiling is False
