"""Stage 3: 4x upscale with a spandrel model (Real-ESRGAN class), tiled with feathered overlap.

spandrel has no tiler, so this module has one, generic over any `fn(tile) -> tile * scale`:

- Tiles are all full size: along each axis they start every `tile - overlap` pixels and the last
  one is shifted inward to end exactly at the image edge (never dropped, never shrunk). An image
  smaller than the tile is one tile of its own size.
- Each tile's output is weighted by a separable ramp over the overlap (cosine or linear) on the
  sides that touch another tile; sides on the image border keep full weight (no dark/white edges).
- Tiles are combined as a running weighted mean, out += w / (W + w) * (tile - out), which is the
  weighted average normalised by the per-pixel weight sum, but exact when the tiles agree: the
  first tile at a pixel gets ratio w / w == 1 exactly, and equal values add a zero difference.
  So an identity-like model is reproduced bit for bit, whatever the weights.
- On a CUDA out-of-memory error the tile is halved (not below 64 px) and the image is redone.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ai_wallpaper.config.settings import OutputSettings, Settings, UpscaleSettings
from ai_wallpaper.config.vocabulary import feather_overlap_problem
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ModelError, RunError
from ai_wallpaper.render.stages import tiling
from ai_wallpaper.render.stages.common import (
    CancelCheck,
    Progress,
    StageConfig,
    bound_problems,
    never_cancel,
    no_progress,
    pil_to_tensor,
    raise_if_cancelled,
    tensor_to_pil,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = log.get(__name__)

MIN_TILE = 64  # OOM backoff floor: below this the overlap is most of the tile and it stops paying off
Feather = Literal["cosine", "linear"]
TileFn = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class UpscaleConfig(StageConfig):
    scale: int
    tile: int  # input pixels
    overlap: int  # input pixels, feathered
    half_precision: bool  # float16 on CUDA when the model supports it; ignored on CPU

    @classmethod
    def from_settings(cls, settings: Settings) -> UpscaleConfig:
        u = settings.pipeline.upscale
        return cls(scale=settings.output.upscale_factor, tile=u.tile, overlap=u.overlap,
                   half_precision=u.half_precision)

    def problems(self) -> list[str]:
        found = [*bound_problems(OutputSettings, "output", {"upscale_factor": self.scale}),
                 *bound_problems(UpscaleSettings, "pipeline.upscale", {"tile": self.tile, "overlap": self.overlap})]
        whole = not any(isinstance(v, bool) or not isinstance(v, int) for v in (self.tile, self.overlap))
        if whole and (problem := feather_overlap_problem(self.tile, self.overlap)):
            found.append(f"pipeline.upscale.overlap: {problem[0]}; {problem[1]}")
        return found


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of full-size tiles covering [0, size); the last one ends exactly at `size`.

    Same geometry as the enhancement's tiles, except that an image side smaller than the tile is
    one tile (the upscaler just runs on the whole side)."""
    if size <= tile:
        return [0]
    return tiling.tile_starts(size, tile, overlap)


def feather_1d(length: int, ramp: int, feather_start: bool, feather_end: bool,
               profile: Feather) -> torch.Tensor:
    """Per-pixel weights along one tile axis: ramps of `ramp` px on the feathered sides, else 1.

    Ramp values are sampled at pixel centres, (i + 0.5) / ramp, so no weight is ever 0 and every
    pixel covered by any tile has a positive weight sum.
    """
    import torch

    weights = torch.ones(length, dtype=torch.float32)
    ramp = min(ramp, length // 2)
    if ramp <= 0:
        return weights
    x = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
    rising = x if profile == "linear" else 0.5 - 0.5 * torch.cos(math.pi * x)
    if feather_start:
        weights[:ramp] = rising
    if feather_end:
        weights[-ramp:] = rising.flip(0)
    return weights


def tiled_upscale(
    fn: TileFn,
    image: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int,
    progress: Progress = no_progress,
    cancel: CancelCheck = never_cancel,
    *,
    feather: Feather = "cosine",
) -> torch.Tensor:
    """Apply `fn` ((1,C,h,w) -> (1,C,h*scale,w*scale)) to `image` (1,C,H,W) tile by tile.

    Returns a float32 tensor (1, C, H*scale, W*scale) on the image's device. A
    `torch.OutOfMemoryError` from `fn` halves the tile (min 64) and restarts; each backoff is
    logged; RunError when even the smallest tile does not fit.
    """
    import torch

    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"tiled_upscale expects a (1, C, H, W) tensor, got {tuple(image.shape)}")
    if tile < 1 or overlap < 0:
        raise ValueError(f"tiled_upscale needs tile >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    if problem := feather_overlap_problem(tile, overlap):
        raise ValueError(f"tiled_upscale overlap {problem[0]}")
    while True:
        # 1. Try the whole image at the current tile size.
        try:
            return _tiled_pass(fn, image, scale, tile, overlap, progress, cancel, feather)
        except torch.OutOfMemoryError:
            failed = min(tile, max(image.shape[-2:]))
        # 2. Out of memory (handled outside the except block so the traceback's tensors are freed).
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if failed <= MIN_TILE:
            raise RunError(f"the upscaler ran out of GPU memory even with {failed} px tiles",
                           hint="close other GPU programs, set models.memory.cpu_offload, or use a smaller "
                                "upscaler model")
        # 3. Halve the tile; keep the overlap unless it no longer fits a quarter of the tile.
        new_tile = max(MIN_TILE, failed // 2)
        new_overlap = min(overlap, new_tile // 4)
        logger.warning("upscale.oom_backoff", tile=failed, new_tile=new_tile, overlap=new_overlap)
        tile, overlap = new_tile, new_overlap


def _tiled_pass(fn: TileFn, image: torch.Tensor, scale: int, tile: int, overlap: int,
                progress: Progress, cancel: CancelCheck, feather: Feather) -> torch.Tensor:
    import torch

    _, channels, height, width = image.shape
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    out = torch.zeros((1, channels, height * scale, width * scale), dtype=torch.float32, device=image.device)
    weight_sum = torch.zeros((1, 1, height * scale, width * scale), dtype=torch.float32, device=image.device)
    total = len(ys) * len(xs)
    done = 0
    for y in ys:
        wy = feather_1d(th * scale, overlap * scale, y > 0, y + th < height, feather)
        for x in xs:
            # 1. Upscale one full-size tile.
            raise_if_cancelled(cancel)
            result = fn(image[:, :, y:y + th, x:x + tw])
            expected = (1, channels, th * scale, tw * scale)
            if tuple(result.shape) != expected:
                raise RunError(f"upscaler returned {tuple(result.shape)} for a {th}x{tw} tile, expected "
                               f"{expected}", hint="check output.upscale_factor against the model's scale")
            # 2. Fold it into the running weighted mean (exact where tiles agree; see module doc).
            wx = feather_1d(tw * scale, overlap * scale, x > 0, x + tw < width, feather)
            w = (wy[:, None] * wx[None, :]).to(image.device)[None, None]
            oy, ox = y * scale, x * scale
            region = out[:, :, oy:oy + th * scale, ox:ox + tw * scale]
            region_w = weight_sum[:, :, oy:oy + th * scale, ox:ox + tw * scale]
            region_w += w
            region += (w / region_w) * (result.to(device=image.device, dtype=torch.float32) - region)
            done += 1
            progress(done, total)
    return out


def run_upscale(
    image: Image.Image,
    model: Any,
    cfg: UpscaleConfig,
    progress: Progress = no_progress,
    cancel: CancelCheck = never_cancel,
) -> Image.Image:
    """Upscale a PIL image by `cfg.scale` with a spandrel ImageModelDescriptor, tiled."""
    import torch

    # 1. The model must be a 3-channel upscaler of exactly the configured scale.
    if int(model.scale) != cfg.scale:
        raise ModelError(f"the upscaler model scales by {model.scale}x but the pipeline expects {cfg.scale}x",
                         hint=f"set output.upscale_factor: {model.scale} or choose a {cfg.scale}x model")
    if int(model.input_channels) != 3 or int(model.output_channels) != 3:
        raise ModelError(f"the upscaler model has {model.input_channels} input / {model.output_channels} "
                         "output channels; an RGB (3 -> 3) model is needed")

    # 2. fp16 only on CUDA, when asked and when the architecture supports it. autocast instead of
    #    model.half() keeps the shared model untouched.
    device = model.device
    use_half = cfg.half_precision and device.type == "cuda" and bool(model.supports_half) \
        and model.dtype == torch.float32
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_half else contextlib.nullcontext()
    requirements = model.size_requirements
    tile = _fit_tile(cfg.tile, requirements)
    overlap = min(cfg.overlap, (tile - 1) // 2)

    def upscale_tile(t: torch.Tensor) -> torch.Tensor:
        # Pad up to the model's size rules (multiple_of / minimum / square), run, crop the padding off.
        h, w = t.shape[-2:]
        pad_w, pad_h = requirements.get_padding(w, h)
        if pad_w or pad_h:
            t = torch.nn.functional.pad(t, (0, pad_w, 0, pad_h), mode="replicate")
        with autocast:
            result = model(t.to(device=device, dtype=model.dtype))
        return result[..., : h * cfg.scale, : w * cfg.scale].float().cpu()

    # 3. Tile over the whole image under inference mode (no autograd graph, less memory).
    logger.info("upscale.start", size=image.size, scale=cfg.scale, tile=tile, overlap=overlap,
                device=str(device), half=use_half)
    with torch.inference_mode():
        result = tiled_upscale(upscale_tile, pil_to_tensor(image), cfg.scale, tile, overlap, progress, cancel)
    return tensor_to_pil(result)


def _fit_tile(tile: int, requirements: Any) -> int:
    """Round the tile down to the model's `multiple_of` and up to its `minimum` (no per-tile padding)."""
    multiple = max(1, int(requirements.multiple_of))
    return max(int(requirements.minimum), tile // multiple * multiple, multiple)
