"""Where the 8K enhancement's tiles go: the fewest tiles that keep a minimum blend width, spread evenly.

The UNet's work is proportional to the tiled area, so per axis this picks the number of tiles n and
the smallest tile length t (at most the configured tile, a multiple of 8 latent pixels = 64 px, the
UNet's downsampling) with n*t >= length + (n-1)*overlap, then spreads the n tiles evenly so every
neighbour pair overlaps by at least `overlap` (most by more). Height and width are chosen separately,
so tiles may be non-square (SDXL is trained on many aspect buckets around one megapixel): at
7680x4096 with tile 1024 and overlap 64 that is 8x5 tiles of 1024x896 (35 tile-equivalents of
1024^2) instead of a fixed stride's 10x5 of 1024^2 with overlap 256 (50). bench/work.py counts it and
bench/RESULTS.md holds the overlap-vs-seam measurements behind the default.
"""

from __future__ import annotations

import math

from ai_wallpaper.render.stages.tiling import TileBox

LATENT_MULTIPLE = 8  # tile lengths in latent pixels are multiples of this (the UNet downsamples 3x)


def axis_tiles(length: int, max_tile: int, min_overlap: int, multiple: int = LATENT_MULTIPLE) -> tuple[int, list[int]]:
    """(tile length, starts) covering [0, length): fewest tiles, least area, evenly spread."""
    if max_tile <= 0 or min_overlap < 0 or min_overlap >= max_tile:
        raise ValueError(f"need 0 <= overlap ({min_overlap}) < tile ({max_tile})")
    if max_tile >= length:
        return length, [0]
    best: tuple[int, int, int] | None = None  # (area, n, tile)
    fewest = math.ceil((length - min_overlap) / (max_tile - min_overlap))
    for n in (fewest, fewest + 1):  # rounding up to `multiple` can make one more tile cheaper
        tile = min(max_tile, math.ceil((length + (n - 1) * min_overlap) / n / multiple) * multiple)
        if n * tile - (n - 1) * min_overlap >= length and (best is None or n * tile < best[0]):
            best = (n * tile, n, tile)
    assert best is not None  # n = fewest always fits at tile = max_tile
    _, n, tile = best
    # Even spread: gaps are floor/ceil of (length - tile) / (n - 1) <= tile - min_overlap.
    starts = [round(i * (length - tile) / (n - 1)) for i in range(n)]
    return tile, starts


def enhance_grid(height: int, width: int, max_tile: int, min_overlap: int) -> list[TileBox]:
    """Row-major tiles over a height x width latent (all one size: the UNet sees one shape)."""
    tile_h, ys = axis_tiles(height, max_tile, min_overlap)
    tile_w, xs = axis_tiles(width, max_tile, min_overlap)
    return [TileBox(y, x, tile_h, tile_w) for y in ys for x in xs]
