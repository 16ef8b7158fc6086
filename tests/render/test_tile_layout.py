"""The 8K enhancement's tile layout: fewest tiles, least area, every overlap at least the minimum."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.render.quality import enhance_tiles
from ai_wallpaper.render.stages.tile_layout import axis_tiles, enhance_grid


@given(length=st.integers(16, 1200), max_tile=st.sampled_from([16, 32, 64, 128, 136]),
       overlap=st.integers(0, 15))
def test_tiles_cover_the_axis_with_at_least_the_overlap(length: int, max_tile: int, overlap: int) -> None:
    tile, starts = axis_tiles(length, max_tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == length  # no gap at either edge
    assert tile <= max_tile and (tile == length or tile % 8 == 0)
    for a, b in itertools.pairwise(starts):
        assert b - a > 0 and a + tile - b >= overlap  # no gap, at least the minimum overlap
    if len(starts) > 1:
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert max(gaps) - min(gaps) <= 1  # spread evenly
        assert len(starts) in (math.ceil((length - overlap) / (max_tile - overlap)),
                               math.ceil((length - overlap) / (max_tile - overlap)) + 1)


def test_the_default_8k_layout_is_8_by_5_tiles_of_1024x896() -> None:
    enh = Settings().pipeline.enhance
    tiles = enhance_tiles(7680, 4096, enh.tile, enh.overlap)
    assert (enh.tile, enh.overlap) == (1024, 64)
    assert len(tiles) == 40 and {(t.h, t.w) for t in tiles} == {(896, 1024)}
    assert len(tiles) * 896 * 1024 / 1024**2 == 35.0  # tile-equivalents per step (a fixed 256 stride: 50)
    xs, ys = sorted({t.x for t in tiles}), sorted({t.y for t in tiles})
    assert min(1024 - (b - a) for a, b in itertools.pairwise(xs)) >= 64
    assert min(896 - (b - a) for a, b in itertools.pairwise(ys)) >= 64


def test_an_image_no_larger_than_the_tile_is_one_tile() -> None:
    assert enhance_grid(64, 96, 128, 8) == enhance_grid(64, 96, 96, 8)
    assert len(enhance_grid(64, 96, 128, 8)) == 1
