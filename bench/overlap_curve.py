"""Overlap vs tiles vs seam score vs work for the 8K enhancement's tile layout (render/stages/tile_layout.py).

    python -m bench.overlap_curve [--size 3072x2048] [--overlaps 32,64,96,128,256] [--steps 10]

For each minimum overlap: the tiles the layout picks (count, size, tile-equivalents of 1024^2 = the
UNet work per step), the smallest overlap it actually leaves, and the seam score (tiling.seam_score:
~1.0 = tile borders look like the rest) of the built-in tiny model's enhanced image, next to the same
score of the input over the same borders. The tiny model's weights are random, so the score shows
whether the blend leaves steps at tile borders, not how a real SDXL paints across them.
"""

from __future__ import annotations

import argparse
import itertools
import time

from ai_wallpaper.render.stages.tile_layout import enhance_grid
from ai_wallpaper.render.stages.tiling import seam_score
from bench.common import enhance_config, parse_size, quiet, sample_image


def min_overlap(starts: list[int], tile: int) -> int | None:
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    return tile - max(gaps) if gaps else None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="3072x2048")
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--overlaps", default="32,64,96,128,256")
    p.add_argument("--steps", type=int, default=10, help="denoising steps actually run (strength 1.0 / steps)")
    p.add_argument("--model", default="builtin:tiny")
    args = p.parse_args(argv)
    quiet()
    from ai_wallpaper.config.render_settings import ModelSettings
    from ai_wallpaper.core.paths import Paths
    from ai_wallpaper.render.model_loading import load_sdxl
    from ai_wallpaper.render.stages.enhance import run_enhance

    width, height = parse_size(args.size)
    pipe = load_sdxl(args.model, "base", ModelSettings(device="cpu"), Paths.from_env())
    image = sample_image(width, height, seed=3)
    print(f"size {width}x{height}, max tile {args.tile}, {args.steps} steps at strength 0.35, model {args.model}")
    print(f"{'overlap':>7} {'tiles':>5} {'tile hxw':>9} {'tile-eq':>7} {'min ov x/y':>10} {'seam in':>7} "
          f"{'seam out':>8} {'out/in':>6} {'s':>6}")
    for overlap in (int(v) for v in args.overlaps.split(",")):
        grid = enhance_grid(height // 8, width // 8, args.tile // 8, overlap // 8)
        boxes = [b.scaled(8) for b in grid]
        th, tw = boxes[0].h, boxes[0].w
        ov_x = min_overlap(sorted({b.x for b in boxes}), tw)
        ov_y = min_overlap(sorted({b.y for b in boxes}), th)
        cfg = enhance_config("a mountain lake at dawn, detailed", tile=args.tile, overlap=overlap,
                             steps=int(args.steps / 0.35 + 0.999), strength=0.35, batch_size=1)
        started = time.monotonic()
        out = run_enhance(image, pipe, cfg)
        seconds = time.monotonic() - started
        before, after = seam_score(image, boxes), seam_score(out, boxes)
        print(f"{overlap:>7} {len(boxes):>5} {th:>4}x{tw:<4} {len(boxes) * th * tw / 1024**2:>7.2f} "
              f"{ov_x!s:>4}/{ov_y!s:<5} {before:>7.3f} {after:>8.3f} {after / before:>6.3f} {seconds:>6.1f}")


if __name__ == "__main__":
    main()
