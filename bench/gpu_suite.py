"""Every full-size benchmark for one GPU session, in priority order, as Markdown for RESULTS.md.

    python -m bench.gpu_suite                   # = --part quick: ~3-5 min on an H100, one device call:
                                                # bench.gpu_quick (pipeline at real sizes, compile on/off,
                                                # ours vs USDU); runs with the carried wheels (bench/carried.py)
    python -m bench.gpu_suite --part stages     # ~3 min on an H100: the per-stage table (target < 60 s)
    python -m bench.gpu_suite --part compare    # ~2 min: 8K ours vs naive USDU
    python -m bench.gpu_suite --part switches   # ~7 min: every speed switch at 4K
    python -m bench.gpu_suite --part scaling    # ~3 min: size / overlap scaling at full size
    python -m bench.gpu_suite --part all        # all of the above (longer than one 10-minute call)

Models are full-size SDXL 1.0 / RealESRGAN_x4plus architectures with random weights (nothing is
downloaded). Each part is a separate call of the matching bench script's `main`, so the numbers
are exactly what those scripts print.
"""

from __future__ import annotations

import argparse
import time

PARTS: dict[str, tuple[str, list[str]]] = {
    "quick": ("bench.gpu_quick", []),
    "stages": ("bench.stages", ["--model", "sdxl-random", "--repeat", "2"]),
    "compare": ("bench.enhance_vs_naive", ["--model", "sdxl-random", "--size", "7680x4096", "--rounds", "1"]),
    "switches": ("bench.switches", ["--model", "sdxl-random", "--gpu-set", "--size", "3840x2048",
                                    "--reps", "1"]),
    "scaling": ("bench.scaling", ["--model", "sdxl-random", "--steps", "10", "--strength", "0.3",
                                  "--batch-size", "4"]),
}


def main(argv: list[str] | None = None) -> None:
    import importlib

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=[*PARTS, "all"], default="quick")
    a = p.parse_args(argv)
    from bench import carried

    carried.activate()  # the GPU machine's Python has torch only
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("bench.gpu_suite needs a CUDA GPU; on the CPU run the bench scripts with "
                         "--model builtin")
    for name in PARTS if a.part == "all" else [a.part]:
        module, args = PARTS[name]
        print(f"\n## {name}: python -m {module} {' '.join(args)}\n", flush=True)
        started = time.perf_counter()
        importlib.import_module(module).main(args)
        print(f"\n({name} took {time.perf_counter() - started:.0f} s including model builds)", flush=True)
        import gc

        gc.collect()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
