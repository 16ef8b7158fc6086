"""Stage 3: 4x upscale with a spandrel model (Real-ESRGAN class), tiled with cropped context margins.

spandrel has no tiler, so this module has one, generic over any `fn(tile) -> tile * scale`:

- The image is cut into core tiles of `tile` px; the last row/column is shifted inward to end exactly
  at the image edge (never dropped, never shrunk). An image side smaller than the tile is one tile.
- Each core is run with up to `margin` px of real image around it (fewer at the image border, where
  an untiled run has no context either) and only the core's output is kept: the margin is computed
  and cropped away. So every kept pixel saw at least `margin` px of context on every side, and the
  tiled result equals an untiled run wherever the model's receptive field fits the margin.
  Blending overlapping outputs instead mixes two tiles that each saw only part of the context: with
  the real RealESRGAN_x4plus that gave errors up to 26/255 at 32 px where margins give 10/255.
- On a CUDA out-of-memory error the tile is halved (not below 64 px) and the image is redone; the
  tile and margin that finished are returned so the run record can say what ran.
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ai_wallpaper.config.render_settings import OutputSettings, UpscaleSettings
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import tile_margin_problem
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ModelError, RunError
from ai_wallpaper.render.devices import free_memory_bytes
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

MIN_TILE = 64  # OOM backoff floor: below this the margins are most of the work and it stops paying off
TileFn = Callable[["torch.Tensor"], "torch.Tensor"]


@dataclass(frozen=True)
class UpscaleConfig(StageConfig):
    scale: int
    tile: int | None  # input pixels; None = auto (tile_for_memory at run time)
    margin: int  # input pixels of context around each tile, cropped away (pipeline.upscale.overlap)
    half_precision: bool  # float16 on CUDA when the model supports it; ignored on CPU

    @classmethod
    def from_settings(cls, settings: Settings) -> UpscaleConfig:
        u = settings.pipeline.upscale
        return cls(scale=settings.output.upscale_factor, tile=None if u.tile == "auto" else u.tile, margin=u.overlap,
                   half_precision=u.half_precision)

    def problems(self) -> list[str]:
        found = [*bound_problems(OutputSettings, "output", {"upscale_factor": self.scale}),
                 *bound_problems(UpscaleSettings, "pipeline.upscale",
                                 {"overlap": self.margin, **({} if self.tile is None else {"tile": self.tile})})]
        whole = not any(isinstance(v, bool) or not isinstance(v, int) for v in (self.tile, self.margin))
        if whole and self.tile is not None and (problem := tile_margin_problem(self.tile, self.margin)):
            found.append(f"pipeline.upscale.overlap: {problem[0]}; {problem[1]}")
        return found


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of full-size tiles covering [0, size); the last one ends exactly at `size`.

    Same geometry as the enhancement's tiles, except that an image side smaller than the tile is
    one tile (the upscaler just runs on the whole side)."""
    if size <= tile:
        return [0]
    return tiling.tile_starts(size, tile, overlap)


class Tiled(NamedTuple):
    image: torch.Tensor  # float32 (1, C, H*scale, W*scale)
    tile: int  # the tile that finished (smaller than asked after an out-of-memory backoff)
    margin: int


def tiled_upscale(
    fn: TileFn,
    image: torch.Tensor,
    scale: int,
    tile: int,
    margin: int,
    progress: Progress = no_progress,
    cancel: CancelCheck = never_cancel,
) -> Tiled:
    """Apply `fn` ((1,C,h,w) -> (1,C,h*scale,w*scale)) to `image` (1,C,H,W) tile by tile.

    A `torch.OutOfMemoryError` from `fn` halves the tile (min 64) and restarts; each backoff is
    logged; RunError when even the smallest tile does not fit.
    """
    import torch

    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"tiled_upscale expects a (1, C, H, W) tensor, got {tuple(image.shape)}")
    if tile < 1 or margin < 0:
        raise ValueError(f"tiled_upscale needs tile >= 1 and margin >= 0, got tile={tile}, margin={margin}")
    if problem := tile_margin_problem(tile, margin):
        raise ValueError(f"tiled_upscale margin {problem[0]}")
    while True:
        # 1. Try the whole image at the current tile size.
        try:
            return Tiled(_tiled_pass(fn, image, scale, tile, margin, progress, cancel), tile, margin)
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
        # 3. Halve the tile; keep the margin unless it no longer fits the smaller tile.
        new_tile = max(MIN_TILE, failed // 2)
        new_margin = min(margin, (new_tile - 1) // 2)
        logger.warning("upscale.oom_backoff", tile=failed, new_tile=new_tile, margin=new_margin)
        tile, margin = new_tile, new_margin


def _tiled_pass(fn: TileFn, image: torch.Tensor, scale: int, tile: int, margin: int,
                progress: Progress, cancel: CancelCheck) -> torch.Tensor:
    import torch

    _, channels, height, width = image.shape
    ys, xs = tile_starts(height, tile, 0), tile_starts(width, tile, 0)
    th, tw = min(tile, height), min(tile, width)
    out = torch.zeros((1, channels, height * scale, width * scale), dtype=torch.float32, device=image.device)
    total = len(ys) * len(xs)
    done = 0
    for y in ys:
        y0, y1 = max(0, y - margin), min(height, y + th + margin)
        for x in xs:
            # 1. Upscale the core tile with its context margin.
            raise_if_cancelled(cancel)
            x0, x1 = max(0, x - margin), min(width, x + tw + margin)
            result = fn(image[:, :, y0:y1, x0:x1])
            expected = (1, channels, (y1 - y0) * scale, (x1 - x0) * scale)
            if tuple(result.shape) != expected:
                raise RunError(f"upscaler returned {tuple(result.shape)} for a {y1 - y0}x{x1 - x0} tile, "
                               f"expected {expected}", hint="check output.upscale_factor against the model's scale")
            # 2. Keep only the core: the margin was context, not output.
            cy, cx = (y - y0) * scale, (x - x0) * scale
            out[:, :, y * scale:(y + th) * scale, x * scale:(x + tw) * scale] = \
                result[:, :, cy:cy + th * scale, cx:cx + tw * scale].to(device=image.device, dtype=torch.float32)
            done += 1
            progress(done, total)
    return out


class Upscaled(NamedTuple):
    image: Image.Image
    ran: dict[str, Any]  # what ran, for run.json: architecture, scale, dtype, device, tile, margin


def run_upscale(
    image: Image.Image,
    model: Any,
    cfg: UpscaleConfig,
    progress: Progress = no_progress,
    cancel: CancelCheck = never_cancel,
) -> Upscaled:
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
    # auto (None): one pass when the whole image fits, else the largest tile that does
    requested = cfg.tile if cfg.tile is not None else tile_for_memory(
        image.width, image.height, cfg.scale, cfg.margin, 2 if use_half else model.dtype.itemsize,
        free_memory_bytes(device))
    tile = _fit_tile(requested, requirements)
    margin = min(cfg.margin, (tile - 1) // 2)

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
    logger.info("upscale.start", size=image.size, scale=cfg.scale, tile=tile, margin=margin,
                device=str(device), half=use_half)
    with torch.inference_mode():
        tiled = tiled_upscale(upscale_tile, pil_to_tensor(image), cfg.scale, tile, margin, progress, cancel)
    ran = {"architecture": str(model.architecture.name), "scale": int(model.scale),
           "dtype": "float16" if use_half else str(model.dtype).removeprefix("torch."),
           "device": str(device), "tile": tiled.tile, "margin": tiled.margin}
    return Upscaled(tensor_to_pil(tiled.image), ran)


# Live activations per input pixel of an ESRGAN-class x4 net (RRDBNet): the trunk and a dense block's
# growth channels at input size, then 64 channels at 2x and two 64-channel maps at the output size.
# The same count the memory estimate uses (render/feasibility.py).
def activation_bytes_per_pixel(scale: int, elem: int) -> int:
    return (64 + 4 * 32 + 64 * 4 + 2 * 64 * scale**2) * elem


def tile_for_memory(width: int, height: int, scale: int, margin: int, elem: int, free_bytes: int) -> int:
    """The largest square input tile (with its margins) whose activations fit in half of `free_bytes`;
    the whole image's longer side when the whole image fits (one pass, no margin computed twice)."""
    budget = free_bytes // 2
    per_pixel = activation_bytes_per_pixel(scale, elem)
    if width * height * per_pixel <= budget:
        return max(width, height)
    side = math.isqrt(budget // per_pixel) - 2 * margin
    return max(64, side // 8 * 8)


def _fit_tile(tile: int, requirements: Any) -> int:
    """Round the tile down to the model's `multiple_of` and up to its `minimum` (no per-tile padding)."""
    multiple = max(1, int(requirements.multiple_of))
    return max(int(requirements.minimum), tile // multiple * multiple, multiple)
