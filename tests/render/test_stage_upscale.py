"""Upscale stage: the feathered tiler (exactness, weights, full-size tiles, OOM backoff) and
run_upscale with the built-in tiny ESRGAN (real spandrel model, CPU)."""

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
    feather_1d,
    run_upscale,
    tile_starts,
    tiled_upscale,
)

# Tiled vs untiled tiny ESRGAN: the tiles lack context near their edges (receptive field), which
# the feathered blend hides. Measured max |diff| ~0.0013, mean ~1e-5 (values in [0, 1]).
TILED_MAX_ABS_TOL = 0.004  # about 1 level of 8-bit output
TILED_MEAN_ABS_TOL = 1e-4


def nearest4(t: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, scale_factor=4, mode="nearest")


def config(**over: Any) -> UpscaleConfig:
    return dataclasses.replace(UpscaleConfig.from_settings(Settings()), **over)


def random_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(seed))


# --- tile layout and weights -------------------------------------------------------------------

@pytest.mark.parametrize(("size", "tile", "overlap", "expected"), [
    (100, 128, 16, [0]),                      # smaller than a tile: one tile of the image's size
    (128, 128, 16, [0]),                      # exactly one tile
    (200, 64, 16, [0, 48, 96, 136]),          # last shifted inward to end at 200
    (160, 64, 16, [0, 48, 96]),               # stride fits exactly: 96 + 64 == 160
    (1024, 512, 32, [0, 480, 512]),
])
def test_tile_starts_full_size_and_last_shifted_inward(size: int, tile: int, overlap: int,
                                                        expected: list[int]) -> None:
    starts = tile_starts(size, tile, overlap)
    assert starts == expected
    extent = min(tile, size)
    assert starts[-1] + extent == size
    for a, b in itertools.pairwise(starts):
        assert b - a <= tile - overlap  # every seam has at least `overlap` px of overlap


@pytest.mark.parametrize("profile", ["cosine", "linear"])
def test_feather_weights_ramp_inside_and_stay_one_on_image_borders(profile: Any) -> None:
    both = feather_1d(64, 16, True, True, profile)
    assert torch.all(both > 0) and torch.all(both <= 1)
    assert torch.equal(both[16:48], torch.ones(32))
    assert torch.all(torch.diff(both[:16]) > 0)  # rising into the tile
    # Complementary ramps: two tiles overlapping by exactly the ramp sum to 1 everywhere.
    assert torch.allclose(both[:16] + both[-16:], torch.ones(16), atol=1e-6)
    border = feather_1d(64, 16, False, True, profile)
    assert torch.equal(border[:48], torch.ones(48))  # image border side not feathered


# --- the generic tiler -------------------------------------------------------------------------

@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [
    (64, 64, 32, 8), (100, 70, 48, 8), (37, 129, 32, 4), (50, 50, 64, 16), (97, 61, 40, 0),
])
def test_nearest_neighbour_tiled_equals_untiled_exactly(h: int, w: int, tile: int, overlap: int) -> None:
    image = random_image(h, w)
    seen: list[tuple[int, int]] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen.append((t.shape[-2], t.shape[-1]))
        return nearest4(t)

    out = tiled_upscale(fn, image, 4, tile, overlap)
    # Exact: the blend is a normalised weighted mean, so agreeing tiles reproduce every bit and the
    # image borders are neither darkened nor brightened.
    assert torch.equal(out, nearest4(image))
    assert set(seen) == {(min(tile, h), min(tile, w))}  # all tiles full size


def test_disagreeing_tiles_blend_smoothly_only_in_the_overlap() -> None:
    values = iter([1.0, 3.0])
    out = tiled_upscale(lambda t: torch.full_like(t, next(values)), torch.zeros(1, 3, 32, 56), 1, 32, 8)
    row = out[0, 0, 10]
    # Tiles cover x in [0, 32) and [24, 56): the overlap is [24, 32).
    assert torch.equal(row[:24], torch.full((24,), 1.0))
    assert torch.equal(row[32:], torch.full((24,), 3.0))
    seam = row[24:32]
    assert torch.all(torch.diff(seam) > 0) and seam.min() > 1.0 and seam.max() < 3.0
    assert torch.allclose(seam - 1.0, (3.0 - seam).flip(0), atol=1e-5)  # symmetric cross-fade
    assert torch.equal(out[0, 0], out[0, 0, :1].expand(32, 56))  # no change along y (no seams there)


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
        # A fake CUDA OOM (none can happen on CPU) for inputs over 64x64 = 4096 px.
        seen.append((t.shape[-2], t.shape[-1]))
        if t.shape[-2] * t.shape[-1] > 64 * 64:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return nearest4(t)

    image = random_image(150, 200)
    with capture_logs() as logs:
        out = tiled_upscale(fn, image, 4, 256, 16)
    # 256 -> whole image 150x200 fails; halve the failed extent (200) -> 100: still too big -> 64.
    assert seen[0] == (150, 200)
    assert seen[1] == (100, 100)
    assert set(seen[2:]) == {(64, 64)}
    backoffs = [e for e in logs if e["event"] == "upscale.oom_backoff"]
    assert [(e["tile"], e["new_tile"]) for e in backoffs] == [(200, 100), (100, 64)]
    assert backoffs[-1]["overlap"] == 16
    assert torch.equal(out, nearest4(image))  # the retried result is complete and exact


def test_oom_at_the_smallest_tile_is_a_run_error() -> None:
    seen: list[int] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.shape[-1])
        raise torch.OutOfMemoryError("CUDA out of memory (fake)")

    with pytest.raises(RunError, match="even with 64 px tiles"):
        tiled_upscale(fn, random_image(300, 300), 4, 256, 32)
    assert seen == [256, 128, 64]


def test_wrong_output_size_from_fn_is_a_run_error() -> None:
    with pytest.raises(RunError, match="expected"):
        tiled_upscale(lambda t: F.interpolate(t, scale_factor=2), random_image(20, 20), 4, 32, 4)


# --- run_upscale with the real tiny ESRGAN ------------------------------------------------------

@pytest.mark.parametrize(("h", "w", "tile", "overlap"), [(48, 48, 32, 8), (37, 53, 32, 6)])
def test_tiny_esrgan_tiled_matches_untiled(tiny_upscaler: Any, h: int, w: int, tile: int,
                                          overlap: int) -> None:
    image = random_image(h, w, seed=h)
    with torch.inference_mode():
        whole = tiny_upscaler(image)
        tiled = tiled_upscale(tiny_upscaler, image, 4, tile, overlap)
    diff = (whole - tiled).abs()
    assert diff.max().item() < TILED_MAX_ABS_TOL
    assert diff.mean().item() < TILED_MEAN_ABS_TOL


def test_run_upscale_is_exactly_4x_deterministic_and_ignores_half_on_cpu(tiny_upscaler: Any) -> None:
    image = Image.fromarray((random_image(30, 50)[0].permute(1, 2, 0).numpy() * 255).astype("uint8"))
    progress: list[tuple[int, int]] = []
    first = run_upscale(image, tiny_upscaler, config(tile=32, overlap=4, half_precision=True),
                        progress=lambda s, n: progress.append((s, n)))
    second = run_upscale(image, tiny_upscaler, config(tile=32, overlap=4, half_precision=False))
    assert first.size == (200, 120)
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
    out = run_upscale(image, strict, config(tile=40, overlap=4))  # tile rounds down to 32
    assert out.size == (148, 52)
    assert seen and all(h % 8 == 0 and w % 8 == 0 and h >= 16 and w >= 16 for h, w in seen)
    assert set(seen) == {(16, 32)}  # 13 px rows padded to 16; full 32 px tiles
    # A flat input stays (nearly) flat: the texture is small and the replicate padding adds no edge.
    corner = np.asarray(out)[51, 147].astype(int)
    assert np.abs(corner - np.array([200, 40, 90])).max() <= 16


def test_run_upscale_rejects_a_model_of_another_scale(tiny_upscaler: Any) -> None:
    with pytest.raises(ModelError, match="scales by 4x but the pipeline expects 2x"):
        run_upscale(Image.new("RGB", (8, 8)), tiny_upscaler, config(scale=2, tile=32, overlap=4))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"tile": 64, "overlap": 32}, r"pipeline\.upscale\.overlap: must be less than half of tile \(64\), got 32"),
    ({"tile": 16}, r"pipeline\.upscale\.tile: must be >= 32, got 16"),
    ({"scale": 0}, r"output\.upscale_factor: must be >= 1, got 0"),
    ({"overlap": -1}, r"pipeline\.upscale\.overlap: must be >= 0, got -1"),
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
