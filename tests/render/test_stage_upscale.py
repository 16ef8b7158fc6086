"""Upscale stage: the tiler with cropped context margins (exactness, layout, OOM backoff) and
run_upscale with the built-in tiny ESRGAN (real spandrel model, CPU). tests/render/test_real_upscaler.py
checks the tiler against the real RealESRGAN_x4plus weights."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from structlog.testing import capture_logs

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core.errors import Cancelled, ConfigError, ModelError, RunError
from ai_wallpaper.render.stages.common import pil_to_tensor
from ai_wallpaper.render.stages.upscale import (
    UpscaleConfig,
    run_upscale,
    tile_starts,
    tiled_upscale,
)


def nearest4(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, scale_factor=4, mode="nearest")


def blur_then_nearest4(radius: int) -> Any:
    """A model whose every output pixel depends on the input within `radius` px (a box blur, zero
    padded at the image border like a real conv net), then 4x nearest."""
    def fn(t: torch.Tensor) -> torch.Tensor:
        return nearest4(F.avg_pool2d(t, 2 * radius + 1, stride=1, padding=radius, count_include_pad=True))
    return fn


def config(**over: Any) -> UpscaleConfig:
    return dataclasses.replace(UpscaleConfig.from_settings(Settings()), **over)


def random_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(seed))


# --- tile layout -------------------------------------------------------------------------------

@pytest.mark.parametrize(("size", "tile", "expected"), [
    (100, 128, [0]),                 # smaller than a tile: one tile of the image's size
    (128, 128, [0]),                 # exactly one tile
    (200, 64, [0, 64, 128, 136]),    # last core shifted inward to end at 200
    (192, 64, [0, 64, 128]),
])
def test_core_tiles_are_full_size_and_cover_the_image(size: int, tile: int, expected: list[int]) -> None:
    starts = tile_starts(size, tile, 0)
    assert starts == expected
    assert starts[-1] + min(tile, size) == size
    assert all(b - a <= tile for a, b in itertools.pairwise(starts))  # no gap between cores


# --- the generic tiler -------------------------------------------------------------------------

@pytest.mark.parametrize(("h", "w", "tile", "margin"), [
    (64, 64, 32, 8), (100, 70, 48, 8), (37, 129, 32, 4), (50, 50, 64, 16), (97, 61, 40, 0),
])
def test_nearest_neighbour_tiled_equals_untiled_exactly(h: int, w: int, tile: int, margin: int) -> None:
    image = random_image(h, w)
    seen: list[tuple[int, int]] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen.append((t.shape[-2], t.shape[-1]))
        return nearest4(t)

    tiled = tiled_upscale(fn, image, 4, tile, margin)
    assert torch.equal(tiled.image, nearest4(image))
    assert (tiled.tile, tiled.margin) == (tile, margin)
    assert all(th <= min(h, tile + 2 * margin) and tw <= min(w, tile + 2 * margin) for th, tw in seen)


@pytest.mark.parametrize(("radius", "margin", "exact"), [(3, 3, True), (3, 8, True), (3, 2, False), (5, 0, False)])
def test_a_margin_as_wide_as_the_receptive_field_makes_tiles_exact(radius: int, margin: int, exact: bool) -> None:
    image = random_image(70, 90, seed=radius)
    model = blur_then_nearest4(radius)
    tiled = tiled_upscale(model, image, 4, 24, margin).image
    assert torch.allclose(tiled, model(image), atol=1e-6) is exact


def test_each_tile_keeps_only_its_core() -> None:
    widths: list[int] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        widths.append(t.shape[-1])
        return torch.full((1, 3, t.shape[-2], t.shape[-1]), float(len(widths)))

    out = tiled_upscale(fn, torch.zeros(1, 3, 20, 56), 1, 24, 6).image[0, 0]
    # Cores x: [0, 24), [24, 48), [32, 56) (last shifted inward, pasted last); windows add 6 px each side.
    assert widths == [30, 36, 30]
    assert torch.equal(out[:, :24], torch.full((20, 24), 1.0))
    assert torch.equal(out[:, 24:32], torch.full((20, 8), 2.0))
    assert torch.equal(out[:, 32:], torch.full((20, 24), 3.0))


def test_cancel_stops_between_tiles() -> None:
    calls = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return nearest4(t)

    with pytest.raises(Cancelled):
        tiled_upscale(fn, random_image(64, 64), 4, 32, 8, cancel=lambda: len(calls) >= 2)
    assert len(calls) == 2


def test_progress_counts_every_tile() -> None:
    seen: list[tuple[int, int]] = []
    tiled_upscale(nearest4, random_image(40, 70), 4, 32, 8, progress=lambda s, n: seen.append((s, n)))
    # rows: [0, 8]; cols: [0, 24, 38] -> 6 tiles
    assert seen == [(i, 6) for i in range(1, 7)]


def test_oom_halves_the_tile_and_logs_each_backoff() -> None:
    seen: list[tuple[int, int]] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        # A fake CUDA OOM (none can happen on CPU) for inputs over 110x110 px.
        seen.append((t.shape[-2], t.shape[-1]))
        if t.shape[-2] * t.shape[-1] > 110 * 110:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return nearest4(t)

    image = random_image(150, 200)
    with capture_logs() as logs:
        tiled = tiled_upscale(fn, image, 4, 256, 16)
    # 256 -> whole image 150x200 fails; halve the failed extent (200) -> 100: its 116 px window with
    # the margin is still too big -> 64 (windows of at most 96 px).
    assert seen[0] == (150, 200)
    assert seen[1] == (116, 116)
    assert all(h <= 96 and w <= 96 for h, w in seen[2:])
    backoffs = [e for e in logs if e["event"] == "upscale.oom_backoff"]
    assert [(e["tile"], e["new_tile"]) for e in backoffs] == [(200, 100), (100, 64)]
    assert backoffs[-1]["margin"] == 16
    assert (tiled.tile, tiled.margin) == (64, 16)  # what finished, for the run record
    assert torch.equal(tiled.image, nearest4(image))  # the retried result is complete and exact


def test_oom_at_the_smallest_tile_is_a_run_error() -> None:
    seen: list[int] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.shape[-1])
        raise torch.OutOfMemoryError("CUDA out of memory (fake)")

    with pytest.raises(RunError, match="even with 64 px tiles"):
        tiled_upscale(fn, random_image(300, 300), 4, 256, 32)
    assert seen == [256 + 32, 128 + 32, 64 + 31]  # first windows: core + right margin (the margin shrinks to fit)


def test_wrong_output_size_from_fn_is_a_run_error() -> None:
    with pytest.raises(RunError, match="expected"):
        tiled_upscale(lambda t: F.interpolate(t, scale_factor=2), random_image(20, 20), 4, 32, 4)


# --- run_upscale with the real tiny ESRGAN ------------------------------------------------------

@pytest.mark.parametrize(("h", "w", "tile", "margin"), [(48, 48, 32, 8), (37, 53, 32, 6), (64, 80, 32, 15)])
def test_tiny_esrgan_tiled_matches_untiled(tiny_upscaler: Any, h: int, w: int, tile: int, margin: int) -> None:
    image = random_image(h, w, seed=h)
    with torch.inference_mode():
        whole = tiny_upscaler(image)
        tiled = tiled_upscale(tiny_upscaler, image, 4, tile, margin).image
    diff = (whole - tiled).abs()
    # The tiny model's context beyond a few px is weak: about one 8-bit level at worst.
    assert diff.max().item() < 0.004
    assert diff.mean().item() < 1e-4


def test_run_upscale_is_exactly_4x_deterministic_and_ignores_half_on_cpu(tiny_upscaler: Any) -> None:
    image = Image.fromarray((random_image(30, 50)[0].permute(1, 2, 0).numpy() * 255).astype("uint8"))
    progress: list[tuple[int, int]] = []
    first, ran = run_upscale(image, tiny_upscaler, config(tile=32, margin=4, half_precision=True),
                             progress=lambda s, n: progress.append((s, n)))
    second = run_upscale(image, tiny_upscaler, config(tile=32, margin=4, half_precision=False)).image
    assert first.size == (200, 120)
    assert ran == {"architecture": "ESRGAN", "scale": 4, "dtype": "float32", "device": "cpu", "tile": 32,
                   "margin": 4}
    assert first.tobytes() == second.tobytes()  # same bits; fp16 is never used on CPU
    assert progress[-1][0] == progress[-1][1] == 2
    # The texture is small: the result stays close to a nearest-neighbour 4x of the input.
    near = nearest4(pil_to_tensor(image))
    assert (pil_to_tensor(first) - near).abs().mean().item() < 0.05


def test_run_upscale_pads_to_the_models_size_rules(tiny_upscaler: Any) -> None:
    from spandrel import ImageModelDescriptor, SizeRequirements

    seen: list[tuple[int, int]] = []

    def call(model: Any, t: torch.Tensor) -> torch.Tensor:
        seen.append((t.shape[-2], t.shape[-1]))
        return model(t)

    strict = ImageModelDescriptor(
        tiny_upscaler.model, tiny_upscaler.model.state_dict(), tiny_upscaler.architecture,
        purpose="SR", tags=[],
        supports_half=True, supports_bfloat16=True, scale=4, input_channels=3, output_channels=3,
        size_requirements=SizeRequirements(minimum=16, multiple_of=16), call_fn=call)
    image = Image.new("RGB", (37, 13), (200, 40, 90))
    out, ran = run_upscale(image, strict, config(tile=40, margin=4))  # tile rounds down to 32
    assert out.size == (148, 52) and ran["tile"] == 32
    assert seen and all(h % 16 == 0 and w % 16 == 0 and h >= 16 and w >= 16 for h, w in seen)
    assert set(seen) == {(16, 48)}  # 13 px rows padded to 16; 32 px cores + margins (36 px) padded to 48
    # A flat input stays (nearly) flat: the texture is small and the replicate padding adds no edge.
    corner = np.asarray(out)[51, 147].astype(int)
    assert np.abs(corner - np.array([200, 40, 90])).max() <= 16


def test_run_upscale_rejects_a_model_of_another_scale(tiny_upscaler: Any) -> None:
    with pytest.raises(ModelError, match="scales by 4x but the pipeline expects 2x"):
        run_upscale(Image.new("RGB", (8, 8)), tiny_upscaler, config(scale=2, tile=32, margin=4))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tile": 64, "margin": 32}, r"pipeline\.upscale\.overlap: must be less than half of tile \(64\), got 32"),
    ({"tile": 16}, r"pipeline\.upscale\.tile: must be >= 32, got 16"),
    ({"scale": 0}, r"output\.upscale_factor: must be >= 1, got 0"),
    ({"margin": -1}, r"pipeline\.upscale\.overlap: must be >= 0, got -1"),
])
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**kwargs)


def test_tiler_and_settings_share_the_half_tile_rule() -> None:
    from ai_wallpaper.config.settings import settings_from_dict

    with pytest.raises(ValueError, match="must be less than half of tile") as stage:
        tiled_upscale(nearest4, random_image(8, 8), 4, 64, 32)
    with pytest.raises(ConfigError, match="must be less than half of tile") as schema:
        settings_from_dict({"pipeline": {"upscale": {"tile": 64, "overlap": 32}}})
    assert "(64), got 32" in str(stage.value) and "(64), got 32" in str(schema.value)
