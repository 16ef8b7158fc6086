"""Tile geometry, blend weights, tiling validation and the seam metric (pure, fast)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ai_wallpaper.render.stages.tiling import (
    TileBox,
    blend_weights,
    blend_weights_np,
    fit_tile,
    seam_lines,
    seam_score,
    tile_grid,
    tile_starts,
    validate_tiling,
    weight_sum_np,
)


def _coverage(height: int, width: int, boxes: list[TileBox]) -> np.ndarray:
    count = np.zeros((height, width), dtype=np.int32)
    for box in boxes:
        count[box.slices()] += 1
    return count


@pytest.mark.parametrize(("length", "tile", "overlap"), [
    (512, 256, 64), (768, 256, 64), (1000, 256, 64), (257, 256, 0), (300, 128, 120), (96, 32, 8),
    (4096, 1024, 256), (7680, 1024, 256), (1024, 1024, 256), (1000, 256, 0),
])
def test_tile_starts_full_size_last_at_edge_no_gaps(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    assert starts == sorted(set(starts)), "starts must be strictly increasing (no duplicates)"
    assert starts[0] == 0
    assert starts[-1] + tile == length, "the last tile ends exactly at the edge"
    assert all(s >= 0 and s + tile <= length for s in starts), "every tile is full size and inside"
    for a, b in itertools.pairwise(starts):
        assert b - a <= tile - overlap, "consecutive tiles overlap by at least `overlap` (no gap)"
        assert b - a > 0


def test_default_8k_geometry() -> None:
    assert tile_starts(4096, 1024, 256) == [0, 768, 1536, 2304, 3072]
    assert tile_starts(7680, 1024, 256) == [0, 768, 1536, 2304, 3072, 3840, 4608, 5376, 6144, 6656]
    boxes = tile_grid(4096, 7680, 1024, 256)
    assert len(boxes) == 50 and len(set(boxes)) == 50
    assert all(b.h == 1024 and b.w == 1024 for b in boxes)
    assert (_coverage(4096, 7680, boxes) >= 1).all()
    # The latent grid of the same job is the pixel grid / 8, box for box.
    latent = tile_grid(512, 960, 128, 32)
    assert [b.scaled(8) for b in latent] == boxes


@pytest.mark.parametrize(("height", "width"), [(256, 512), (384, 768), (300, 1000), (256, 256)])
def test_tile_grid_covers_everything_once_per_box(height: int, width: int) -> None:
    boxes = tile_grid(height, width, 256, 64)
    assert len(set(boxes)) == len(boxes)
    cover = _coverage(height, width, boxes)
    assert cover.min() >= 1
    assert max(b.bottom for b in boxes) == height and max(b.right for b in boxes) == width


def test_tile_starts_single_tile_and_errors() -> None:
    assert tile_starts(256, 256, 64) == [0]
    with pytest.raises(ValueError, match=r"tile \(512\) is larger than the image side \(256\)"):
        tile_starts(256, 512, 64)
    with pytest.raises(ValueError, match=r"overlap must be less than tile \(256\), got 256"):
        tile_starts(1024, 256, 256)
    with pytest.raises(ValueError, match="overlap must be >= 0"):
        tile_starts(1024, 256, -8)
    with pytest.raises(ValueError, match="tile must be positive"):
        tile_starts(1024, 0, 0)


@pytest.mark.parametrize("kind", ["gaussian", "cosine"])
def test_weights_positive_symmetric_normalise_to_one(kind: str) -> None:
    w = blend_weights_np(32, 32, kind, overlap=8)
    assert w.dtype == np.float32 and w.shape == (32, 32)
    assert w.min() > 0, "never exactly zero: every pixel stays covered"
    np.testing.assert_allclose(w, w[::-1, :], rtol=1e-6)
    np.testing.assert_allclose(w, w[:, ::-1], rtol=1e-6)
    assert w[16, 16] == pytest.approx(w.max())
    # Sum-normalised over a real grid, the weights are a partition of unity everywhere,
    # and the corner pixels (one tile) keep full weight: image borders are not feathered.
    boxes = tile_grid(96, 160, 32, 8)
    total = weight_sum_np(96, 160, boxes, w)
    normalised = np.zeros_like(total)
    for box in boxes:
        normalised[box.slices()] += w / total[box.slices()]
    np.testing.assert_allclose(normalised, 1.0, rtol=1e-6)
    corner = boxes[0]
    assert (w / total[corner.slices()])[0, 0] == pytest.approx(1.0, abs=1e-6)
    last = boxes[-1]
    assert (w / total[last.slices()])[-1, -1] == pytest.approx(1.0, abs=1e-6)


def test_cosine_ramps_are_complementary_on_a_regular_stride() -> None:
    # Before any normalisation the falling and rising ramps already sum to 1 (sin^2 + cos^2).
    w = blend_weights_np(32, 32, "cosine", overlap=8)[16]  # a middle row: its vertical factor is 1
    raw = np.zeros(32 + 24)
    raw[:32] += w
    raw[24:] += w
    np.testing.assert_allclose(raw[8:48], 1.0, atol=1e-6)
    assert w[8:24].min() == 1.0 and w[0] < 0.01


def test_gaussian_edge_is_tiny_but_positive_and_torch_matches() -> None:
    w = blend_weights_np(128, 128, "gaussian")
    assert 0 < w[0, 64] / w[64, 64] < 1e-4
    t = blend_weights(128, 128, "gaussian")
    assert tuple(t.shape) == (128, 128)
    np.testing.assert_array_equal(t.numpy(), w)


def test_weights_bad_kind() -> None:
    with pytest.raises(ValueError, match="blend kind must be one of gaussian, cosine, got 'box'"):
        blend_weights_np(8, 8, "box")


def test_validate_tiling_accepts_defaults() -> None:
    validate_tiling(4096, 7680, 1024, 256)
    validate_tiling(256, 512, 256, 64)


@pytest.mark.parametrize(("args", "message"), [
    ((4096, 7680, 1000, 256), r"pipeline\.enhance\.tile: must be a positive multiple of 64.*try 960"),
    ((4096, 7680, 1024, 252), r"pipeline\.enhance\.overlap: must be a non-negative multiple of 8.*try 248"),
    ((4096, 7680, 1024, 1024),
     r"pipeline\.enhance\.overlap: must be less than tile \(1024\), got 1024; use at most 1016"),
    ((4100, 7680, 1024, 256), r"image size 7680x4100: both sides must be multiples of 8"),
    ((512, 1024, 1024, 256),
     r"pipeline\.enhance\.tile: 1024 is larger than the image \(1024x512\); use at most 512"),
])
def test_validate_tiling_errors_name_setting_and_fix(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_tiling(*args)


def test_validate_tiling_reports_every_problem() -> None:
    with pytest.raises(ValueError) as info:
        validate_tiling(4100, 7680, 1000, 1004)
    text = str(info.value)
    assert "pipeline.enhance.tile" in text and "pipeline.enhance.overlap" in text and "image size" in text


def test_fit_tile_shrinks_only_when_needed() -> None:
    assert fit_tile(4096, 7680, 1024, 256) == (1024, 256)
    tile, overlap = fit_tile(512, 1024, 1024, 256)
    assert (tile, overlap) == (512, 128)
    validate_tiling(512, 1024, tile, overlap)


def test_seam_lines_include_edges_and_overlap_middles() -> None:
    rows, cols = seam_lines(tile_grid(256, 512, 256, 64), 256, 512)
    assert rows == []
    # starts 0, 192, 256 (the last shifted inward): edges 192, 256, 448 and overlap middles 224, 352
    assert cols == [192, 224, 256, 352, 448]


def _smooth(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    diagonal = (xx + yy) / (width + height) * 120 + 60
    return np.stack([xx / width * 180 + 30, yy / height * 160 + 40, diagonal], -1)


def test_seam_score_flat_on_smooth_and_high_on_a_pasted_step() -> None:
    boxes = tile_grid(384, 768, 256, 64)
    smooth = _smooth(384, 768)
    assert seam_score(smooth, boxes) == pytest.approx(1.0, abs=0.02)
    pasted = smooth.copy()
    pasted[:, 192:] += 6.0  # a paste that is slightly brighter from the second tile on
    assert seam_score(pasted, boxes) > 3.0


def test_seam_score_sees_a_step_through_noise_but_not_noise_itself() -> None:
    rng = np.random.default_rng(0)
    boxes = tile_grid(384, 768, 256, 64)
    noisy = _smooth(384, 768) + rng.normal(0, 20, (384, 768, 3))
    assert 0.8 < seam_score(noisy, boxes) < 1.2
    # A naive paste: each tile pasted in order with its own small brightness offset (std 5,
    # far below the noise's 20), as independently processed tiles would be.
    pasted = noisy.copy()
    for box in boxes:
        pasted[box.slices()] = noisy[box.slices()] + rng.normal(0, 5)
    assert seam_score(pasted, boxes) > 1.5


def test_seam_score_input_errors() -> None:
    with pytest.raises(ValueError, match="at least two tiles"):
        seam_score(np.zeros((256, 256)), tile_grid(256, 256, 256, 0))
    with pytest.raises(ValueError, match="band must be >= 1"):
        seam_score(np.zeros((256, 512)), tile_grid(256, 512, 256, 64), band=0)
