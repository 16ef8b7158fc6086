"""The dark-style wallpaper: a night version of the same picture, tone-mapped, not rendered again.

Darker and cooler, the way a scene looks after dusk: exposure down with a gentle curve that keeps
the highlights (a lit window stays a light), colour partly drained and shifted toward blue, as the
eye's night vision does. A pure function of the pixels (0.5 s on a 4K image here: bench/monitor_cuts.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

EXPOSURE = 0.5  # mid-tones end at about half their brightness
CURVE = 1.35  # >1 darkens the shadows more than the highlights
SATURATION = 0.6  # share of the colour kept
TINT = (0.82, 0.9, 1.12)  # per-channel gain: moonlight blue


def night_variant(image: Image.Image) -> Image.Image:
    import numpy as np
    from PIL import Image

    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    toned = luma[..., None] + SATURATION * (rgb - luma[..., None])
    toned = EXPOSURE * np.power(np.clip(toned, 0.0, 1.0), CURVE) * np.array(TINT, dtype=np.float32)
    return Image.fromarray((np.clip(toned, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")
