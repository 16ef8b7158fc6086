"""How the enhancement stage's cost grows with output size and tile overlap.

    python -m bench.scaling --model builtin --steps 10 --strength 0.3

For each output size (4K 3840x2048, 6K 5760x3072, 8K 7680x4096: the upscaled sizes of 960x512,
1440x768 and 1920x1024 bases) and overlap (128, 256, 384 px) it runs the product's `run_enhance`
once and splits the time into the UNet part (a timing wrapper around the product's own UNet
denoiser) and the rest (tiled VAE encode/decode, blending, scheduler). The UNet part should be
linear in the number of tiles (constant seconds per tile-step); the rest grows with pixel count.
A least-squares line through (tiles, UNet seconds) and its R² are printed to show it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import (
    SpeedOptions,
    cuda_sync,
    enhance_config,
    format_table,
    load_models,
    machine_line,
    parse_size,
    quiet,
    sample_image,
    set_threads,
    timed,
)

SIZES = {"4K": "3840x2048", "6K": "5760x3072", "8K": "7680x4096"}
OVERLAPS = (128, 256, 384)


@dataclass
class ScalingRow:
    label: str
    size: tuple[int, int]
    overlap: int
    tiles: int
    steps_run: int
    seconds: float
    unet_seconds: float

    @property
    def tile_steps(self) -> int:
        return self.tiles * self.steps_run

    def cells(self) -> list[Any]:
        w, h = self.size
        return [self.label, f"{w}x{h}", self.overlap, self.tiles, self.tile_steps, self.seconds,
                self.unet_seconds, self.unet_seconds / self.tile_steps, self.seconds - self.unet_seconds,
                (self.seconds - self.unet_seconds) / (w * h / 1e6)]


HEADERS = ["size", "pixels", "overlap", "tiles", "tile-steps", "total s", "UNet s", "UNet s / tile-step",
           "rest s", "rest s / Mpx"]


class TimedDenoiser:
    """The product's UNet denoiser with a stopwatch around every call."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def __call__(self, sample: Any, timestep: Any, boxes: Sequence[Any]) -> Any:
        seconds, pred = timed(lambda: self.inner(sample, timestep, boxes))
        self.seconds += seconds
        self.calls += 1
        return pred


def measure_enhance(pipe: Any, image: Any, cfg: Any) -> tuple[float, float]:
    """(total seconds, UNet seconds) of one run_enhance; prompt encoding is outside both."""
    from ai_wallpaper.render.stages.enhance import run_enhance
    from ai_wallpaper.render.stages.enhance_denoise import encode_conditioning, unet_denoiser

    cond = encode_conditioning(pipe, cfg.prompt, cfg.negative_prompt, cfg.guidance_scale, (cfg.tile, cfg.tile),
                               pipe._execution_device)
    denoiser = TimedDenoiser(unet_denoiser(pipe.unet, cond))
    cuda_sync()
    seconds, _ = timed(lambda: run_enhance(image, pipe, cfg, denoiser=denoiser))
    return seconds, denoiser.seconds


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares y = a*x + b; returns (a, b, R²)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    a = sxy / sxx if sxx else 0.0
    b = my - a * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (a * x + b)) ** 2 for x, y in zip(xs, ys, strict=True))
    return a, b, 1.0 - ss_res / ss_tot if ss_tot else 1.0


def run_scaling(pipe: Any, sizes: dict[str, str], overlaps: Sequence[int], tile: int, steps: int,
                strength: float, batch_size: int, log: Any = None) -> list[ScalingRow]:
    from ai_wallpaper.render.stages.tiling import tile_grid

    rows = []
    for label, text in sizes.items():
        width, height = parse_size(text)
        image = sample_image(width, height)
        for overlap in overlaps:
            cfg = enhance_config("a lighthouse on a rocky coast at dusk", tile=tile, overlap=overlap,
                                 strength=strength, steps=steps, batch_size=batch_size)
            tiles = len(tile_grid(height, width, tile, overlap))
            total, unet = measure_enhance(pipe, image, cfg)
            row = ScalingRow(label, (width, height), overlap, tiles, cfg.steps_to_run, total, unet)
            rows.append(row)
            if log:
                log(f"{label} overlap {overlap}: {tiles} tiles, {total:.1f} s (UNet {unet:.1f} s)")
    return rows


def report(rows: Sequence[ScalingRow]) -> str:
    a, b, r2 = fit_line([r.tile_steps for r in rows], [r.unet_seconds for r in rows])
    return (format_table(HEADERS, [r.cells() for r in rows])
            + f"\n\nUNet seconds vs tile-steps: {a:.3f} s per tile-step + {b:.2f} s, "
              f"R² = {r2:.4f} (1 = linear)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["builtin", "sdxl-random"], default="builtin")
    p.add_argument("--sizes", default="4K,6K,8K", help=f"comma list from {', '.join(SIZES)} or WxH")
    p.add_argument("--overlaps", default="128,256,384")
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--strength", type=float, default=0.3)
    p.add_argument("--batch-size", type=int, default=1, help="fixed, so the tile count alone drives the cost")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    set_threads(a.threads)
    quiet()
    sizes = {s: SIZES.get(s, s) for s in a.sizes.split(",")}
    overlaps = [int(v) for v in a.overlaps.split(",")]
    models = load_models(a.model, SpeedOptions(dtype=a.dtype, batch_size=a.batch_size), a.device)
    print(f"# bench.scaling: model {a.model}, tile {a.tile}, {int(a.steps * a.strength)} of {a.steps} steps, "
          f"batch size {a.batch_size}, CFG on")
    print(f"# {machine_line()}")
    rows = run_scaling(models.base, sizes, overlaps, a.tile, a.steps, a.strength, a.batch_size,
                       log=lambda m: print(f"  {m}", flush=True))
    print()
    print(report(rows))


if __name__ == "__main__":
    main()
