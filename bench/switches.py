"""The effect of each speed switch on the enhancement stage (and the upscaler's precision).

    python -m bench.switches --model builtin --size 2048x1024                # CPU: what CPU can show
    python -m bench.switches --model sdxl-random --size 7680x4096 --gpu-set  # GPU: every switch

Every variant loads fresh models with one switch changed from the baseline (see
`common.SpeedOptions` for the settings key of each switch), runs one warm-up and then `--reps`
timed runs of `run_enhance` on the same image, and one 4x upscale of the image's quarter-size
version. The table shows medians, the ratio to the baseline and peak memory.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.common import (
    ModelKind,
    Row,
    SpeedOptions,
    enhance_config,
    format_table,
    load_models,
    machine_line,
    measure,
    median,
    parse_size,
    quiet,
    sample_image,
    set_threads,
    with_options,
)

PROMPT = "a lighthouse on a rocky coast at dusk, dramatic clouds, highly detailed"


def cpu_variants() -> list[tuple[str, SpeedOptions]]:
    base = SpeedOptions(dtype="float32")
    return [
        ("baseline (fp32, SDPA, batch auto)", base),
        ("classic attention (no SDPA)", with_options(base, attention="classic")),
        ("attention slicing", with_options(base, attention="sliced")),
        ("channels_last", with_options(base, channels_last=True)),
        ("batch 1", with_options(base, batch_size=1)),
        ("batch 4", with_options(base, batch_size=4)),
        ("bfloat16", with_options(base, dtype="bfloat16")),
    ]


def gpu_variants() -> list[tuple[str, SpeedOptions]]:
    base = SpeedOptions(dtype="float16")
    return [
        ("baseline (fp16, SDPA, fp32 VAE, batch auto)", base),
        ("float32", with_options(base, dtype="float32")),
        ("bfloat16", with_options(base, dtype="bfloat16")),
        ("fp16-safe VAE (no fp32 upcast)", with_options(base, vae_fp16=True)),
        ("classic attention (no SDPA)", with_options(base, attention="classic")),
        ("attention slicing", with_options(base, attention="sliced")),
        ("channels_last", with_options(base, channels_last=True)),
        ("batch 1", with_options(base, batch_size=1)),
        ("upscaler fp32", with_options(base, upscale_half=False)),
        ("torch.compile UNet", with_options(base, compile=True)),
        ("all on: fp16-safe VAE + channels_last + compile", with_options(base, vae_fp16=True,
                                                                          channels_last=True, compile=True)),
    ]


@dataclass
class VariantResult:
    name: str
    opts: SpeedOptions
    enhance_seconds: list[float]
    upscale_seconds: float
    peak: Row


def run_variant(model: ModelKind, name: str, opts: SpeedOptions, image: Any, small: Any, tile: int,
                overlap: int, steps: int, strength: float, reps: int, device: str,
                warmup: bool = True) -> VariantResult:
    from ai_wallpaper.config.settings import Settings
    from ai_wallpaper.render.stages.enhance import run_enhance
    from ai_wallpaper.render.stages.upscale import UpscaleConfig, run_upscale

    models = load_models(model, opts, device)
    cfg = enhance_config(PROMPT, tile=tile, overlap=overlap, strength=strength, steps=steps,
                         batch_size=opts.batch_size)
    upscale = replace(UpscaleConfig.from_settings(Settings()), half_precision=opts.upscale_half)
    if warmup:  # first-call costs (cuDNN autotune, torch.compile) are not what a daemon pays per run
        run_enhance(image, models.base, cfg)
    rows: list[Row] = []
    for _ in range(reps):
        with measure(rows, "enhance"):
            run_enhance(image, models.base, cfg)
    up_rows: list[Row] = []
    with measure(up_rows, "upscale"):
        run_upscale(small, models.upscaler, upscale)
    peak = max(rows, key=lambda r: r.peak_cuda_mb or r.peak_rss_mb)
    del models
    _free()
    return VariantResult(name, opts, [r.seconds for r in rows], up_rows[0].seconds, peak)


def _free() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def report(results: Sequence[VariantResult]) -> str:
    base = median(results[0].enhance_seconds)
    up_base = results[0].upscale_seconds
    rows = [[r.name, median(r.enhance_seconds), base / median(r.enhance_seconds), r.upscale_seconds,
             up_base / r.upscale_seconds, r.peak.peak_rss_mb, r.peak.peak_cuda_mb] for r in results]
    return format_table(["variant", "enhance s", "speed vs baseline", "upscale s", "upscale speed",
                         "peak RSS MB", "peak CUDA MB"], rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["builtin", "sdxl-random"], default="builtin")
    p.add_argument("--size", default="2048x1024", help="enhanced image size (upscale input: a quarter of it)")
    p.add_argument("--gpu-set", action="store_true", help="the GPU variants (default: the CPU ones)")
    p.add_argument("--only", help="comma list of variant numbers (0 = baseline) to run")
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--overlap", type=int, default=256)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--strength", type=float, default=0.35)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    set_threads(a.threads)
    quiet()
    width, height = parse_size(a.size)
    image = sample_image(width, height)
    small = image.resize((width // 4, height // 4))
    variants = gpu_variants() if a.gpu_set else cpu_variants()
    if a.only:
        keep = {int(v) for v in a.only.split(",")} | {0}
        variants = [v for i, v in enumerate(variants) if i in keep]
    print(f"# bench.switches: model {a.model}, enhance {width}x{height} tile {a.tile} overlap {a.overlap}, "
          f"{int(a.steps * a.strength)} of {a.steps} steps, median of {a.reps} (after a warm-up: "
          f"{not a.no_warmup}); upscale {small.width}x{small.height} -> x4")
    print(f"# {machine_line()}")
    results = []
    for name, opts in variants:
        r = run_variant(a.model, name, opts, image, small, a.tile, a.overlap, a.steps, a.strength, a.reps,
                        a.device, warmup=not a.no_warmup)
        print(f"  {name}: enhance {' / '.join(f'{s:.2f}' for s in r.enhance_seconds)} s, "
              f"upscale {r.upscale_seconds:.2f} s", flush=True)
        results.append(r)
    print()
    print(report(results))


if __name__ == "__main__":
    main()
