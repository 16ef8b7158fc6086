"""A few numbers per stage image: sharpness, contrast, colorfulness, noise and (enhanced) seams.

Pure numpy on a copy of the image reduced to a FIXED working size (`WORKING_SIDE` on the long side,
Lanczos). A 1344x768 base, an 8K upscale and a 4K final are then measured as if shown at the same
size, so their figures can be compared stage against stage; a per-pixel measure at native size would
call every 8K image blurrier than its base simply because each pixel covers less of the scene. It
also keeps the cost small and fixed: ~0.6 M pixels whatever the stage size. A smaller image is
measured as it is, never enlarged: interpolation would invent smoothness (an enlarged noisy photo
reads as clean and blurred). Every SDXL stage is at least 1024 px on its long side, so in a real run
all stages are measured at the one size; only tiny test images are not.

Luma is Rec.601 (Y = 0.299 R + 0.587 G + 0.114 B), on the 0..255 scale of 8-bit images: the same
weights as Pillow's "L" mode and as the seam metric in `stages/tiling.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ai_wallpaper.render.stages.tile_layout import enhance_grid
from ai_wallpaper.render.stages.tiling import TileBox, seam_score

if TYPE_CHECKING:
    from PIL import Image

WORKING_SIDE = 1024  # long side of the working copy, in pixels
REC601 = np.array([0.299, 0.587, 0.114])
# Sum of squares of the 3x3 Laplacian [0 1 0; 1 -4 1; 0 1 0]: white noise of sigma s adds
# LAPLACIAN_NOISE_GAIN * s^2 to the Laplacian's variance, which `quality_score` takes back out.
LAPLACIAN_NOISE_GAIN = 20.0
# Immerkaer's mask [1 -2 1; -2 4 -2; 1 -2 1] (a difference of two Laplacians, blind to linear ramps):
# its response to white noise of sigma s has standard deviation 6 s (sqrt of the sum of its squares).
_IMMERKAER_GAIN = 6.0
_MAD_TO_SIGMA = 0.6745  # median(|N(0, 1)|): a median absolute deviation / 0.6745 estimates sigma


@dataclass(frozen=True)
class Quality:
    """The figures of one image. Scales: sharpness in (8-bit levels)^2, contrast 0..1, colorfulness
    as Hasler-Suesstrunk (0 grey, ~15 "slightly", ~45 "quite", >100 "extremely colorful"), noise as
    a sigma in 8-bit levels, seam ~1.0 when tile borders look like the rest (None: not tiled)."""

    sharpness: float
    contrast: float
    colorfulness: float
    noise: float
    seam: float | None = None

    def to_json(self) -> dict[str, float]:
        """What run.json records: every figure rounded, plus `score` (see `quality_score`)."""
        figures = {"sharpness": round(self.sharpness, 2), "contrast": round(self.contrast, 4),
                   "colorfulness": round(self.colorfulness, 2), "noise": round(self.noise, 3),
                   "score": round(quality_score(self), 3)}
        if self.seam is not None:
            figures["seam"] = round(self.seam, 4)
        return figures


# --- the working copy ----------------------------------------------------------------------------
def working_rgb(image: Image.Image | np.ndarray, side: int = WORKING_SIDE) -> np.ndarray:
    """(H, W, 3) float64 RGB in 0..255, reduced with Lanczos so that the long side is at most `side`."""
    from PIL import Image as PILImage

    pil = PILImage.fromarray(_as_uint8_rgb(image)) if isinstance(image, np.ndarray) else image
    if pil.mode != "RGB":
        pil = pil.convert("RGB")
    width, height = pil.size
    scale = side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale < 1.0:
        # reducing_gap: box-reduce by an integer factor first while >= 3x is left, then Lanczos;
        # Pillow documents gap 3 as indistinguishable from plain Lanczos (here: mean 0.17 levels
        # at 8K -> 1024), and it is ~2.5x faster.
        pil = pil.resize(size, PILImage.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(pil, dtype=np.float64)


def _as_uint8_rgb(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {array.shape}")
    return array[:, :, :3]


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec.601 luma of an (H, W, 3) array, same scale as the input."""
    result: np.ndarray = rgb @ REC601
    return result


# --- the metrics (each on a working-size array) ----------------------------------------------------
def laplacian(y: np.ndarray) -> np.ndarray:
    """3x3 Laplacian [0 1 0; 1 -4 1; 0 1 0] over the valid interior (no padding, so no border artefacts)."""
    result: np.ndarray = (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4.0 * y[1:-1, 1:-1])
    return result


def sharpness(y: np.ndarray) -> float:
    """Variance of the Laplacian of luma (Pech-Pacheco et al. 2000): high with fine detail and
    crisp edges, low when blurred. Noise raises it too; `quality_score` corrects for that."""
    return float(laplacian(y).var()) if min(y.shape) >= 3 else 0.0


def contrast(y: np.ndarray) -> float:
    """RMS contrast: the standard deviation of luma scaled to 0..1 (Peli 1990)."""
    return float((y / 255.0).std())


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk 2003, "Measuring colourfulness in natural images" (SPIE 5007):
    rg = R - G, yb = (R + G)/2 - B; M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2)."""
    r, g, b = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    spread = math.hypot(float(rg.std()), float(yb.std()))
    mean = math.hypot(float(rg.mean()), float(yb.mean()))
    return spread + 0.3 * mean


def noise_sigma(y: np.ndarray) -> float:
    """Noise standard deviation in luma levels: Immerkaer's mask (J. Immerkaer 1996, "Fast noise
    variance estimation", CVIU 64(2):300-302), which cancels smooth structure and ramps, with his mean
    absolute response replaced by the median absolute response / 0.6745 (the MAD estimator of
    Donoho & Johnstone 1994): edges and texture occupy a minority of pixels, so the median ignores
    them where the mean would count them as noise."""
    if min(y.shape) < 3:
        return 0.0
    response = (y[:-2, :-2] + y[:-2, 2:] + y[2:, :-2] + y[2:, 2:]
                - 2.0 * (y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:]) + 4.0 * y[1:-1, 1:-1])
    return float(np.median(np.abs(response))) / _MAD_TO_SIGMA / _IMMERKAER_GAIN


# --- one call per stage ---------------------------------------------------------------------------
def measure(image: Image.Image | np.ndarray, *, tiles: Sequence[TileBox] | None = None) -> Quality:
    """The figures of `image` at the working size. `tiles`: the tiling the image was enhanced with,
    in the image's own pixels; its seam score is measured on the luma at native size (a seam is a
    pixel-level step that the working-size downscale would blur away)."""
    rgb = working_rgb(image)
    y = luma(rgb)
    seam = None
    if tiles is not None and len(tiles) > 1:
        seam = seam_score(native_luma(image), tiles)
    return Quality(sharpness=sharpness(y), contrast=contrast(y), colorfulness=colorfulness(rgb),
                   noise=noise_sigma(y), seam=seam)


def enhance_tiles(width: int, height: int, tile: int, overlap: int, scale_factor: int = 8) -> list[TileBox]:
    """The tiles the enhancement ran on (render/stages/enhance.py: a grid in latent pixels), in image pixels."""
    grid = enhance_grid(height // scale_factor, width // scale_factor, tile // scale_factor, overlap // scale_factor)
    return [box.scaled(scale_factor) for box in grid]


def native_luma(image: Image.Image | np.ndarray) -> np.ndarray:
    """Rec.601 luma at native size, rounded to 8 bits (Pillow's "L" mode): a quarter of the memory
    of float32 at 8K, and the rounding (variance 1/12 level^2) is far below any seam worth seeing."""
    from PIL import Image as PILImage

    pil = PILImage.fromarray(_as_uint8_rgb(image)) if isinstance(image, np.ndarray) else image
    return np.asarray(pil.convert("L"))


def quality_score(q: Quality) -> float:
    """One number that rewards detail but not noise (higher is better):

        detail = max(sharpness - 20 noise^2, 0)    the Laplacian energy that is not explained by noise
        score  = 10 log10(1 + detail) - noise      detail in dB, minus the noise sigma in levels

    So doubling the real detail gains 3 points and every level of noise sigma costs 1: a noisy copy
    scores lower than the clean image (its extra Laplacian energy is taken back out, and its noise
    is charged), and so does a blurred copy (less detail). Contrast, colorfulness and seams are not
    in it: they are matters of taste or of a different defect, reported beside it."""
    detail = max(q.sharpness - LAPLACIAN_NOISE_GAIN * q.noise**2, 0.0)
    return 10.0 * math.log10(1.0 + detail) - q.noise
