"""Tile geometry, blend weights and a seam metric for the tiled 8K enhancement.

Pure geometry and numpy; torch is imported lazily only to hand the weights to the enhancer.
Conventions (docs/ARCHITECTURE.md §4):
- every tile is full size; the last row/column is shifted inward so it ends exactly at the
  edge (never dropped, never shrunk), so the UNet always sees one fixed tile shape;
- blend weights are smooth and strictly positive and are normalised by their per-pixel sum,
  so a pixel covered by one tile (image borders included) gets weight exactly 1: image
  borders are never feathered.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ai_wallpaper.config.vocabulary import BLEND_KINDS, BlendKind, tile_fit_problem, tile_overlap_problem

if TYPE_CHECKING:
    import torch
    from PIL import Image

# Mixture-of-Diffusers' Gaussian: variance 0.01 of the tile size (sigma = 0.1 tile). Narrow
# enough that a tile's weight at its own edge is ~4e-6 of its centre (no visible step where a
# tile ends), wide enough that the hand-over between neighbours is smooth, never a hard cut.
DEFAULT_GAUSSIAN_SIGMA = 0.1


@dataclass(frozen=True)
class TileBox:
    """One tile: top-left (y, x) and size (h, w), in whatever unit the grid was built in."""

    y: int
    x: int
    h: int
    w: int

    @property
    def bottom(self) -> int:
        return self.y + self.h

    @property
    def right(self) -> int:
        return self.x + self.w

    def scaled(self, factor: int) -> TileBox:
        """The same box in a space `factor` times larger (latent -> pixels: factor 8)."""
        return TileBox(self.y * factor, self.x * factor, self.h * factor, self.w * factor)

    def slices(self) -> tuple[slice, slice]:
        """(rows, cols) slices for indexing the last two dims of an array or tensor."""
        return slice(self.y, self.bottom), slice(self.x, self.right)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of full-size tiles covering [0, length).

    Stride is tile - overlap; the last tile is shifted inward to end exactly at `length`, so it
    overlaps its neighbour by at least `overlap` (more when length is not on the stride).
    """
    if tile <= 0:
        raise ValueError(f"tile must be positive, got {tile}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if problem := tile_overlap_problem(tile, overlap):
        raise ValueError(f"overlap {problem[0]}")
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if tile > length:
        raise ValueError(f"tile ({tile}) is larger than the image side ({length}); use a tile <= {length}")
    if length == tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[TileBox]:
    """Row-major list of full-size tiles covering a height x width image."""
    ys = tile_starts(height, tile, overlap)
    xs = tile_starts(width, tile, overlap)
    return [TileBox(y, x, tile, tile) for y in ys for x in xs]


def _profile(n: int, kind: BlendKind, ramp: int, sigma: float) -> np.ndarray:
    """1-D weight profile over n samples, evaluated at sample centres (so never exactly 0)."""
    centres = (np.arange(n, dtype=np.float64) + 0.5)
    if kind == "gaussian":
        rel = centres / n - 0.5
        return np.exp(-(rel**2) / (2.0 * sigma**2))
    if kind == "cosine":
        if ramp <= 0:
            return np.ones(n)
        # Raised-cosine ramps over the overlap: with a regular stride a tile's falling ramp and
        # its neighbour's rising ramp are cos^2 and sin^2 of the same angle, so they sum to 1
        # before normalisation and the hand-over spans the whole overlap.
        ramp = min(ramp, n)
        rise = np.sin(0.5 * math.pi * np.minimum(centres / ramp, 1.0)) ** 2
        return np.minimum(rise, rise[::-1])
    raise ValueError(f"blend kind must be one of {', '.join(BLEND_KINDS)}, got {kind!r}")


def blend_weights_np(tile_h: int, tile_w: int, kind: BlendKind = "gaussian", *, overlap: int = 0,
                     sigma: float = DEFAULT_GAUSSIAN_SIGMA) -> np.ndarray:
    """(tile_h, tile_w) float32 weights, strictly positive. `overlap` (same unit as the tile)
    sets the cosine ramp length; `sigma` is the Gaussian's std as a fraction of the tile side."""
    if tile_h <= 0 or tile_w <= 0:
        raise ValueError(f"tile size must be positive, got {tile_h}x{tile_w}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    weights = np.outer(_profile(tile_h, kind, overlap, sigma), _profile(tile_w, kind, overlap, sigma))
    return weights.astype(np.float32)


def blend_weights(tile_h: int, tile_w: int, kind: BlendKind = "gaussian", *, overlap: int = 0,
                  sigma: float = DEFAULT_GAUSSIAN_SIGMA) -> torch.Tensor:
    """`blend_weights_np` as a CPU float32 torch tensor."""
    import torch

    return torch.from_numpy(blend_weights_np(tile_h, tile_w, kind, overlap=overlap, sigma=sigma))


def weight_sum_np(height: int, width: int, boxes: Sequence[TileBox], weights: np.ndarray) -> np.ndarray:
    """Per-pixel sum of the tile weights; divide by it to normalise."""
    total = np.zeros((height, width), dtype=np.float64)
    for box in boxes:
        total[box.slices()] += weights
    return total


def validate_tiling(image_h: int, image_w: int, tile: int, overlap: int, scale_factor: int = 8) -> None:
    """Raise one ValueError listing every problem with this tiling, each naming the setting and a fix."""
    problems = tiling_problems(image_h, image_w, tile, overlap, scale_factor)
    if problems:
        raise ValueError("invalid enhancement tiling:\n  - " + "\n  - ".join(problems))


def tiling_problems(image_h: int, image_w: int, tile: int, overlap: int, scale_factor: int = 8) -> list[str]:
    """What `validate_tiling` reports: the rules that depend on the image and the VAE's scale factor."""
    problems: list[str] = []
    tile_multiple = 8 * scale_factor  # the latent tile must be a multiple of 8 (UNet downsampling)
    if tile <= 0 or tile % tile_multiple:
        fix = max(tile_multiple, tile // tile_multiple * tile_multiple)
        problems.append(f"pipeline.enhance.tile: must be a positive multiple of {tile_multiple} "
                        f"(latent tile = tile/{scale_factor} must be a multiple of 8), got {tile}; try {fix}")
    if overlap < 0 or overlap % scale_factor:
        problems.append(f"pipeline.enhance.overlap: must be a non-negative multiple of {scale_factor} "
                        f"(whole latent pixels), got {overlap}; "
                        f"try {max(0, overlap // scale_factor * scale_factor)}")
    if problem := tile_overlap_problem(tile, overlap):
        problems.append(f"pipeline.enhance.overlap: {problem[0]}; {problem[1]}")
    if image_h % scale_factor or image_w % scale_factor:
        problems.append(f"image size {image_w}x{image_h}: both sides must be multiples of {scale_factor} "
                        "(the VAE's scale factor); fix the upscaled size (base size x output.upscale_factor)")
    if fit := tile_fit_problem(tile, image_w, image_h, tile_multiple):
        problems.append(f"pipeline.enhance.tile: {fit[0]}; {fit[1]}")
    return problems


def fit_tile(image_h: int, image_w: int, tile: int, overlap: int, scale_factor: int = 8) -> tuple[int, int]:
    """Shrink (tile, overlap) to fit a small image (self-test sizes), keeping the overlap ratio.

    Returns the settings unchanged when they already fit. Callers may use this before
    validate_tiling when a configured tile is larger than a deliberately small image.
    """
    tile_multiple = 8 * scale_factor
    side = min(image_h, image_w)
    if tile <= side:
        return tile, overlap
    new_tile = max(tile_multiple, side // tile_multiple * tile_multiple)
    new_overlap = overlap * new_tile // tile // scale_factor * scale_factor
    return new_tile, min(new_overlap, new_tile - scale_factor)


def seam_lines(boxes: Sequence[TileBox], height: int, width: int) -> tuple[list[int], list[int]]:
    """Interior rows and columns where a tiling could leave a seam: every tile edge inside the
    image plus the middle of every overlap (where a weighted blend hands over between tiles)."""

    def lines(intervals: set[tuple[int, int]], length: int) -> list[int]:
        found: set[int] = set()
        ordered = sorted(intervals)
        for start, end in ordered:
            if 0 < start < length:
                found.add(start)
            if 0 < end < length:
                found.add(end)
        for (_, a_end), (b_start, _) in itertools.pairwise(ordered):
            if b_start < a_end:
                found.add((b_start + a_end) // 2)
        return sorted(found)

    rows = lines({(b.y, b.bottom) for b in boxes}, height)
    cols = lines({(b.x, b.right) for b in boxes}, width)
    return rows, cols


def _cross_energy(luma: np.ndarray, segment: int) -> np.ndarray:
    """Per column j: squared step between columns j and j+1, first averaged along segments of
    `segment` rows. A seam is a step that is coherent along the border, so it survives the
    averaging while texture and noise (incoherent) shrink by ~segment: this keeps the metric
    sensitive on noisy or textured images where plain per-pixel gradient energy hides a seam."""
    height = luma.shape[0]
    seg = max(1, min(segment, height))
    steps = np.diff(luma, axis=1)[: height // seg * seg]
    means = steps.reshape(height // seg, seg, -1).mean(axis=1)
    result: np.ndarray = (means**2).mean(axis=0)
    return result


def seam_score(image: np.ndarray | Image.Image, boxes: Sequence[TileBox], band: int = 2,
               segment: int = 32) -> float:
    """Mean cross-border gradient energy in bands along interior tile borders divided by the
    same energy elsewhere. ~1.0: the borders are no different from the rest (no seam); a pasted
    tiling with steps scores clearly above 1.

    `boxes` are in pixels (rows and columns to check come from `seam_lines`); `band` is the
    half-width of each band in pixels. Energy is measured on luma, across the border direction
    (horizontal steps for vertical borders and vice versa), averaged along the border over
    `segment` pixels before squaring (see `_cross_energy`); each direction is normalised by its
    own energy away from the bands.
    """
    if band < 1:
        raise ValueError(f"band must be >= 1 pixel, got {band}")
    array = np.asarray(image, dtype=np.float64)
    luma = array @ np.array([0.299, 0.587, 0.114]) if array.ndim == 3 else array
    height, width = luma.shape
    rows, cols = seam_lines(boxes, height, width)
    if not rows and not cols:
        raise ValueError("seam_score needs at least two tiles (there are no interior borders)")
    normalised: list[np.ndarray] = []
    for lines, plane in ((cols, luma), (rows, luma.T)):
        if not lines:
            continue
        energy = _cross_energy(plane, segment)  # index j = step between pixel j and j+1
        in_band = np.zeros(energy.shape[0], dtype=bool)
        for line in lines:  # the step across a border at `line` lands on index line - 1
            in_band[max(0, line - band):line + band - 1] = True
        if in_band.all():
            raise ValueError(f"band {band} covers the whole image; use a narrower band")
        outside = float(energy[~in_band].mean())
        inside = energy[in_band]
        if outside == 0.0:
            normalised.append(np.where(inside == 0.0, 1.0, np.inf))
        else:
            normalised.append(inside / outside)
    return float(np.concatenate(normalised).mean())
