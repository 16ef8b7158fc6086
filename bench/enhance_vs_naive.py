"""Side by side: our latent-blended enhancement vs. per-tile pixel-space img2img (Ultimate SD Upscale).

    python -m bench.enhance_vs_naive --model builtin --size 3840x2048 --rounds 2
    python -m bench.enhance_vs_naive --model sdxl-random --size 7680x4096 --rounds 2   # GPU

Same model, same image, same tiles, steps, strength, CFG and seed; one process, run alternately
(ours, naive, ours, naive, ...) so drift in machine load hits both. Prints the median times, the
ratio naive/ours and the seam score of both outputs (gradient energy in bands along the tile
borders / elsewhere; 1.0 = no seam) next to the input's own score.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ai_wallpaper.config.settings import Settings
from bench.common import (
    SpeedOptions,
    enhance_config,
    format_table,
    load_models,
    machine_line,
    median,
    parse_size,
    quiet,
    sample_image,
    set_threads,
    timed,
)
from bench.naive_usdu import USDU_MASK_BLUR, run_naive_usdu

PROMPT = "a lighthouse on a rocky coast at dusk, dramatic clouds, highly detailed"
NEGATIVE = "blurry, low quality, jpeg artifacts, watermark, text"


@dataclass
class Comparison:
    ours_seconds: list[float]
    naive_seconds: list[float]
    ours_seam: float
    naive_seam: float
    input_seam: float
    vae_seam: float  # the input through our tiled VAE encode+decode only: the VAE's own share
    tiles: int
    tile_evals: int  # UNet evaluations of one tile (x2 with CFG), the same for both methods
    ours_image: Any = None
    naive_image: Any = None

    @property
    def ratio(self) -> float:
        return median(self.naive_seconds) / median(self.ours_seconds)

    def table(self) -> str:
        rows: list[list[Any]] = [
            ["input (reference)", None, None, self.input_seam],
            ["VAE round trip only (reference)", None, None, self.vae_seam],
            ["ours: latent blend", median(self.ours_seconds),
             " / ".join(f"{s:.1f}" for s in self.ours_seconds), self.ours_seam],
            ["naive: USDU per-tile", median(self.naive_seconds),
             " / ".join(f"{s:.1f}" for s in self.naive_seconds), self.naive_seam],
        ]
        return (format_table(["method", "median s", "runs s", "seam score"], rows)
                + f"\n\nspeed-up (naive / ours, medians): {self.ratio:.2f}x")


def compare(image: Any, pipe: Any, cfg: Any, rounds: int = 2, mask_blur: float = USDU_MASK_BLUR,
            band: int = 4, log: Any = None) -> Comparison:
    """Run ours and the naive loop alternately `rounds` times each on `image` with `pipe`."""
    from ai_wallpaper.render.stages.enhance import decode_latents, encode_image, run_enhance
    from ai_wallpaper.render.stages.tiling import seam_score, tile_grid

    boxes = tile_grid(image.height, image.width, cfg.tile, cfg.overlap)
    ours_t: list[float] = []
    naive_t: list[float] = []
    ours_img = naive_img = None
    for r in range(rounds):
        seconds, ours_img = timed(lambda: run_enhance(image, pipe, cfg))
        ours_t.append(seconds)
        if log:
            log(f"round {r + 1}: ours {seconds:.1f} s")
        seconds, naive_img = timed(lambda: run_naive_usdu(image, pipe, cfg, mask_blur=mask_blur))
        naive_t.append(seconds)
        if log:
            log(f"round {r + 1}: naive {seconds:.1f} s")
    assert ours_img is not None and naive_img is not None
    round_trip = decode_latents(pipe, encode_image(pipe, image, pipe._execution_device, cfg.vae_tiling), cfg.vae_tiling)
    return Comparison(
        ours_seconds=ours_t, naive_seconds=naive_t,
        ours_seam=seam_score(ours_img, boxes, band), naive_seam=seam_score(naive_img, boxes, band),
        input_seam=seam_score(image, boxes, band), vae_seam=seam_score(round_trip, boxes, band),
        tiles=len(boxes), tile_evals=cfg.steps_to_run * len(boxes), ours_image=ours_img,
        naive_image=naive_img,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["builtin", "sdxl-random"], default="builtin")
    p.add_argument("--size", default="3840x2048", help="enhanced image size WxH (the 8K stage: 7680x4096)")
    p.add_argument("--input", help="a PNG to enhance instead of the synthetic test image (resized to --size)")
    product = Settings().pipeline.enhance  # the defaults are the product's
    p.add_argument("--tile", type=int, default=product.tile)
    p.add_argument("--overlap", type=int, default=product.overlap)
    p.add_argument("--steps", type=int, default=product.steps)
    p.add_argument("--strength", type=float, default=product.strength)
    p.add_argument("--guidance", type=float, default=product.guidance_scale)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=None, help="our tiles per UNet call (default auto)")
    p.add_argument("--mask-blur", type=float, default=USDU_MASK_BLUR)
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    p.add_argument("--vae-fp16", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    a = p.parse_args(argv)
    set_threads(a.threads)
    quiet()

    from PIL import Image

    width, height = parse_size(a.size)
    if a.input:
        with Image.open(a.input) as src:
            image = src.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    else:
        image = sample_image(width, height)
    opts = SpeedOptions(dtype=a.dtype, vae_fp16=a.vae_fp16, batch_size=a.batch_size)
    models = load_models(a.model, opts, a.device)
    cfg = enhance_config(PROMPT, NEGATIVE, tile=a.tile, overlap=a.overlap, strength=a.strength, steps=a.steps,
                         guidance_scale=a.guidance, batch_size=a.batch_size)
    print(f"# bench.enhance_vs_naive: model {a.model}, {width}x{height}, tile {a.tile}, overlap {a.overlap}, "
          f"{cfg.steps_to_run} of {a.steps} steps (strength {a.strength}), CFG {a.guidance}, "
          f"mask blur {a.mask_blur}, no seam-fix pass, {a.rounds} alternating rounds")
    print(f"# {machine_line()}")
    result = compare(image, models.base, cfg, a.rounds, a.mask_blur,
                     log=lambda m: print(f"  {m}", flush=True))
    print(f"\n{result.tiles} tiles, {result.tile_evals} UNet tile evaluations for each method; "
          f"our batch size: {a.batch_size or 'auto'}")
    print(result.table())


if __name__ == "__main__":
    main()
