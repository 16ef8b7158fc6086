"""Per-stage wall time and peak memory of a full run: txt2img -> (refine) -> upscale -> enhance -> final.

    python -m bench.stages --model builtin                       # CPU, built-in tiny models, default sizes
    python -m bench.stages --model sdxl-random --steps 50        # GPU, full-size random-weight SDXL

The stages run through the product's stage cores (`ai_wallpaper.render.stages.*`) in the pipeline's order
with the pipeline's configs, on models loaded by the product loader (builtin) or built full size
from bench/configs (sdxl-random). The pipeline orchestrator itself cannot take prebuilt pipes (its
ModelHolder loads from settings), so it is not called; what it adds around the cores -- the PNG
writes of every stage -- is measured as its own row ("png writes").
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai_wallpaper.config.settings import Settings
from bench.common import (
    LoadedModels,
    ModelKind,
    Row,
    SpeedOptions,
    load_models,
    machine_line,
    measure,
    parse_size,
    quiet,
    set_threads,
    stage_table,
)

PROMPT = "a lighthouse on a rocky coast at dusk, dramatic clouds, highly detailed"
NEGATIVE = "blurry, low quality, jpeg artifacts, watermark, text"


# The product's defaults, read from the settings schema (never restated here).
PRODUCT = Settings()
_T, _E, _U, _O = PRODUCT.pipeline.txt2img, PRODUCT.pipeline.enhance, PRODUCT.pipeline.upscale, PRODUCT.output


@dataclass(frozen=True)
class StageBench:
    """Sizes and steps of one benchmark run; the defaults are the product's defaults."""

    width: int = _T.width
    height: int = _T.height
    final_width: int = _O.width
    final_height: int = _O.height
    upscale_factor: int = _O.upscale_factor
    steps: int = _T.steps
    guidance_scale: float = _T.guidance_scale
    scheduler: str = _T.scheduler
    refiner: bool = False
    high_noise_frac: float = PRODUCT.pipeline.refine.high_noise_frac
    upscale_tile: int | None = None if _U.tile == "auto" else _U.tile  # None: auto, from free memory
    upscale_overlap: int = _U.overlap
    enhance_steps: int = _E.steps
    strength: float = _E.strength
    tile: int = _E.tile
    overlap: int = _E.overlap
    enhance_guidance: float = _E.guidance_scale
    seed: int = 1
    save_pngs: bool = True
    opts: SpeedOptions = field(default_factory=SpeedOptions)


def run_stages(bench: StageBench, models: LoadedModels, rows: list[Row]) -> Any:
    """Run every stage once, appending one Row per stage; returns the final PIL image."""
    from ai_wallpaper.render.stages.downsample import DownsampleConfig, run_downsample
    from ai_wallpaper.render.stages.enhance import EnhanceConfig, run_enhance
    from ai_wallpaper.render.stages.refine import RefineConfig, run_refine
    from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig, decode_latents, run_txt2img
    from ai_wallpaper.render.stages.upscale import UpscaleConfig, run_upscale

    images: dict[str, Any] = {}
    refine = bench.refiner and models.refiner is not None
    prompting: dict[str, Any] = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": bench.seed}
    t2i = dataclasses.replace(Txt2ImgConfig.from_settings(PRODUCT, **prompting), width=bench.width,
                              height=bench.height, steps=bench.steps, guidance_scale=bench.guidance_scale,
                              scheduler=bench.scheduler, denoising_end=bench.high_noise_frac if refine else None)
    # 1. txt2img (as pipeline.stage_base: with a refiner, latents plus a decoded preview)
    with measure(rows, "txt2img", f"{bench.width}x{bench.height}, {bench.steps} steps"):
        result = run_txt2img(models.base, t2i)
        latents: Any = result.latents
        if refine:
            images["base"] = decode_latents(models.base, latents)
        else:
            images["base"] = result.image
    image = images["base"]
    # 2. refine
    if refine:
        cfg = dataclasses.replace(RefineConfig.from_settings(PRODUCT, **prompting), steps=bench.steps,
                                  high_noise_frac=bench.high_noise_frac, guidance_scale=bench.guidance_scale,
                                  scheduler=bench.scheduler)
        with measure(rows, "refine", f"from {bench.high_noise_frac}"):
            image = images["refined"] = run_refine(latents, models.refiner, cfg)
    # 3. upscale
    up = dataclasses.replace(UpscaleConfig.from_settings(PRODUCT), scale=bench.upscale_factor,
                             tile=bench.upscale_tile, margin=bench.upscale_overlap,
                             half_precision=bench.opts.upscale_half)
    with measure(rows, "upscale", f"x{bench.upscale_factor}, tile {bench.upscale_tile}"):
        image = images["upscaled"] = run_upscale(image, models.upscaler, up).image
    # 4. enhance
    enh = dataclasses.replace(EnhanceConfig.from_settings(PRODUCT, **prompting), tile=bench.tile,
                              overlap=bench.overlap, strength=bench.strength, steps=bench.enhance_steps,
                              guidance_scale=bench.enhance_guidance, batch_size=bench.opts.batch_size)
    with measure(rows, "enhance", f"{image.width}x{image.height}, {enh.steps_to_run} of {enh.steps} steps"):
        image = images["enhanced"] = run_enhance(image, models.base, enh)
    # 5. downsample
    with measure(rows, "downsample", f"-> {bench.final_width}x{bench.final_height}"):
        final = dataclasses.replace(DownsampleConfig.from_settings(PRODUCT), width=bench.final_width,
                                    height=bench.final_height)
        image = images["final"] = run_downsample(image, final)
    # 6. what the pipeline adds: one PNG per stage (compress 1 for intermediates, 6 for the final)
    if bench.save_pngs:
        with tempfile.TemporaryDirectory(prefix="aiw-bench-png-") as tmp, \
                measure(rows, "png writes", f"{len(images)} files"):
            for name, img in images.items():
                img.save(Path(tmp) / f"{name}.png", compress_level=6 if name == "final" else 1)
    return image


def total_rows(rows: list[Row]) -> list[Row]:
    """Totals with and without the model loads (a daemon run loads once per run; random-weight
    builds are not comparable with loads from disk)."""
    loads = [r for r in rows if r.name.startswith(("load", "build"))]
    work = [r for r in rows if r not in loads]

    def total(name: str, part: list[Row]) -> Row:
        cuda = [r.peak_cuda_mb for r in part if r.peak_cuda_mb is not None]
        return Row(name, sum(r.seconds for r in part), max(r.peak_rss_mb for r in part),
                   max(cuda) if cuda else None)

    out = [total("total (stages)", work)]
    if loads:
        out.append(total("total (with loads)", rows))
    return out


def bench_stages(model: ModelKind, bench: StageBench, device: str = "auto",
                 repeat: int = 1) -> list[list[Row]]:
    """Load once, run the chain `repeat` times; one row list per run (run 1 includes the loads)."""
    models = load_models(model, bench.opts, device, refiner=bench.refiner)
    runs = []
    for i in range(repeat):
        rows: list[Row] = list(models.rows) if i == 0 else []
        run_stages(bench, models, rows)
        runs.append(rows + total_rows(rows))
    return runs


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["builtin", "sdxl-random"], default="builtin")
    p.add_argument("--size", default=f"{_T.width}x{_T.height}", help="base size WxH (upscaled x4; default %(default)s)")
    p.add_argument("--final", default=f"{_O.width}x{_O.height}", help="final wallpaper size (default %(default)s)")
    p.add_argument("--steps", type=int, default=_T.steps, help="txt2img steps (default %(default)s)")
    p.add_argument("--enhance-steps", type=int, default=_E.steps, help="nominal enhance steps (default %(default)s)")
    p.add_argument("--strength", type=float, default=_E.strength)
    p.add_argument("--tile", type=int, default=_E.tile)
    p.add_argument("--overlap", type=int, default=_E.overlap)
    p.add_argument("--refiner", action="store_true", help="add the refiner stage (ensemble of experts)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float16", "bfloat16", "float32"])
    p.add_argument("--attention", default="sdpa", choices=["sdpa", "classic", "sliced"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (CUDA only)")
    p.add_argument("--vae-fp16", action="store_true", help="no fp32 VAE upcast (an fp16-safe VAE)")
    p.add_argument("--upscale-fp32", action="store_true", help="upscaler in fp32 instead of fp16")
    p.add_argument("--batch-size", type=int, default=None, help="enhance tiles per UNet call (default auto)")
    p.add_argument("--no-png", action="store_true", help="skip the PNG-write row")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--repeat", type=int, default=1, help="run the chain N times (later runs are warm)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = _args(argv)
    set_threads(a.threads)
    quiet()
    width, height = parse_size(a.size)
    fw, fh = parse_size(a.final)
    opts = SpeedOptions(dtype=a.dtype, attention=a.attention, channels_last=a.channels_last,
                        compile=a.compile, vae_fp16=a.vae_fp16, upscale_half=not a.upscale_fp32,
                        batch_size=a.batch_size)
    bench = StageBench(width=width, height=height, final_width=fw, final_height=fh, steps=a.steps,
                       refiner=a.refiner, enhance_steps=a.enhance_steps, strength=a.strength, tile=a.tile,
                       overlap=a.overlap, save_pngs=not a.no_png, opts=opts)
    print(f"# bench.stages: model {a.model}, {width}x{height} -> x4 -> {fw}x{fh}, steps {a.steps}, "
          f"enhance {a.enhance_steps} x {a.strength}, switches: {opts.label()}")
    print(f"# {machine_line()}")
    for i, rows in enumerate(bench_stages(a.model, bench, a.device, a.repeat), start=1):
        print(f"\nrun {i}{' (cold: includes loads and first-call costs)' if i == 1 and a.repeat > 1 else ''}")
        print(stage_table(rows))


if __name__ == "__main__":
    main()
