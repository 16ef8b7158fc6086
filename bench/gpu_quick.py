"""One short call on a lent GPU: the whole pipeline at real sizes on the full-size random models.

    python -m bench.gpu_quick              # on the GPU: ~3-5 min on an H100 (models built on the device)
    python -m bench.gpu_quick --small      # the same code end to end on the CPU at small sizes (the check
                                           # that it cannot fail for a trivial reason when a GPU is lent)

It prints the per-stage table (seconds, peak RSS and CUDA memory) of txt2img 1920x1024 -> 4x upscale
(auto tile) -> 8K enhancement (the product's tile layout, batched tiles by free memory) -> downsample,
with fp16, SDPA and channels_last; then the enhancement again with torch.compile (CUDA only); then our
enhancement's UNet wall time next to Ultimate SD Upscale's band pass and half tile scaled by the exact
UNet work ratio `bench.work` counts (an estimate for the peers: same GPU, same per-FLOP speed).
On a machine without our packages it uses the carried wheels (bench/carried.py).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from bench import carried

if TYPE_CHECKING:
    from bench.stages import StageBench


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="CPU check: 256x128 base, 3 steps, bfloat16")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile rerun")
    a = p.parse_args(argv)
    carried.activate()
    import dataclasses

    import torch

    from bench.common import SpeedOptions, load_models, machine_line, quiet, stage_table
    from bench.stages import StageBench, run_stages, total_rows

    quiet()
    cuda = torch.cuda.is_available() and not a.small
    opts = SpeedOptions(dtype="float16" if cuda else "bfloat16", channels_last=cuda, batch_size=None)
    bench = StageBench(opts=opts, save_pngs=False) if not a.small else StageBench(
        width=256, height=128, final_width=960, final_height=540, steps=3, enhance_steps=9, tile=512,
        overlap=64, opts=opts, save_pngs=False)
    print(f"# bench.gpu_quick: full-size random SDXL base + RRDBNet, {bench.width}x{bench.height} -> x4, "
          f"{bench.steps} steps, enhance {bench.enhance_steps} x {bench.strength}, {opts.label()}")
    print(f"# {machine_line()}")
    started = time.perf_counter()
    models = load_models("sdxl-random", opts, "cuda" if cuda else "cpu")
    rows = list(models.rows)
    run_stages(bench, models, rows)
    print("\n" + stage_table(rows + total_rows(rows)))
    enhance_s = next(r.seconds for r in rows if r.name.startswith("enhance"))
    if cuda and not a.no_compile:
        models.base.unet.compile()  # what models.memory.torch_compile does (render/devices.py)
        compiled: list[Any] = []
        run_stages(dataclasses.replace(bench, steps=1), models, compiled)  # first call compiles
        compiled = []
        run_stages(bench, models, compiled)
        print("\nwith torch.compile (warm):\n" + stage_table(compiled + total_rows(compiled)))
    _peers(bench, enhance_s)
    print(f"\n(bench.gpu_quick took {time.perf_counter() - started:.0f} s including model builds)")


def _peers(bench: StageBench, enhance_s: float) -> None:
    """Our enhancement's measured wall time and the peers' at the same per-FLOP speed."""
    from bench.work import unet_ratios

    ratios = unet_ratios(size=(bench.height, bench.width), tile=bench.tile, overlap=bench.overlap)
    print()
    for name in ("USDU 1024 band pass", "USDU 1024 half tile"):
        if name in ratios:
            print(f"{name}: ~{enhance_s * ratios[name]:.1f} s estimated (x{ratios[name]:.2f} our UNet work) "
                  f"vs ours {enhance_s:.1f} s measured")


if __name__ == "__main__":
    main()
