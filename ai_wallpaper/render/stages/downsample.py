"""Stage 5: the 8K image -> the final wallpaper size, scaled to cover and cropped, never stretched.

7680x4096 (1.875:1) and 3840x2160 (1.778:1) differ in aspect ratio, so a plain resize would
squash the picture by 5 %. Instead the image is scaled by one factor in x and y until it covers
the target and the excess is cropped on the side the anchor says. Crop and scale are one PIL
`resize(..., box=...)` call: a single Lanczos pass over a sub-pixel-exact source box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ai_wallpaper.config.render_settings import OutputSettings
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import ANCHORS, Anchor
from ai_wallpaper.core import log
from ai_wallpaper.render.stages.common import StageConfig, bound_problems, choice_problems

if TYPE_CHECKING:
    from PIL import Image

logger = log.get(__name__)


@dataclass(frozen=True)
class DownsampleConfig(StageConfig):
    width: int
    height: int
    anchor: Anchor

    @classmethod
    def from_settings(cls, settings: Settings) -> DownsampleConfig:
        o = settings.output
        return cls(width=o.width, height=o.height, anchor=o.anchor)

    def problems(self) -> list[str]:
        return [*bound_problems(OutputSettings, "output", {"width": self.width, "height": self.height}),
                *choice_problems("output.anchor", self.anchor, ANCHORS)]


def _anchor_fractions(anchor: str) -> tuple[float, float]:
    """Where the crop sits inside the excess: (0, 0) = keep top-left, (0.5, 0.5) = centre."""
    if anchor not in ANCHORS:
        raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}, got {anchor!r}")
    fx = 0.0 if "left" in anchor else 1.0 if "right" in anchor else 0.5
    fy = 0.0 if "top" in anchor else 1.0 if "bottom" in anchor else 0.5
    return fx, fy


def cover_crop_box(src_w: int, src_h: int, dst_w: int, dst_h: int,
                   anchor: str = "center") -> tuple[float, float, float, float]:
    """The (left, top, right, bottom) source box whose uniform scaling fills dst_w x dst_h.

    The box has the target's aspect ratio and spans the full source along the limiting axis, so
    dst_w / box_w == dst_h / box_h (no distortion). Works for downscaling and upscaling alike.
    """
    # 1. Validate: a zero size has no aspect ratio.
    if min(src_w, src_h, dst_w, dst_h) < 1:
        raise ValueError(f"sizes must be positive, got source {src_w}x{src_h}, target {dst_w}x{dst_h}")
    fx, fy = _anchor_fractions(anchor)
    # 2. Compare aspect ratios in integers (exact): is the target relatively wider than the source?
    if dst_w * src_h >= dst_h * src_w:
        box_w, box_h = float(src_w), src_w * dst_h / dst_w  # full width, crop top/bottom
    else:
        box_w, box_h = src_h * dst_w / dst_h, float(src_h)  # full height, crop left/right
    # 3. Place the box inside the source according to the anchor.
    left = (src_w - box_w) * fx
    top = (src_h - box_h) * fy
    return left, top, left + box_w, top + box_h


def run_downsample(image: Image.Image, cfg: DownsampleConfig) -> Image.Image:
    """Scale `image` to cover cfg.width x cfg.height and crop at the anchor: one Lanczos pass."""
    from PIL import Image

    # 1. Already the right size: nothing to resample (a resize would still blur slightly).
    if image.size == (cfg.width, cfg.height):
        return image
    # 2. The source box with the target's aspect ratio, then a single Lanczos resample of it.
    box = cover_crop_box(image.width, image.height, cfg.width, cfg.height, cfg.anchor)
    logger.info("downsample", source=image.size, target=(cfg.width, cfg.height), anchor=cfg.anchor,
                box=tuple(round(v, 3) for v in box))
    return image.resize((cfg.width, cfg.height), Image.Resampling.LANCZOS, box=box)
