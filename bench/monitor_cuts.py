"""What a multi-monitor desktop costs after the render: the per-monitor cuts, the spanning canvas and
the night picture, on a real-size 8K master (the pixels' values do not change these costs).

    python -m bench.monitor_cuts [--repeat 3]

Prints seconds per step (best of --repeat) for a typical desk: a 3840x2160 and a portrait 1080x1920
monitor, plus a 3440x1440 ultrawide.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ai_wallpaper.desktop.night import night_variant
from ai_wallpaper.desktop.per_monitor import compose_span
from ai_wallpaper.render.stages.downsample import DownsampleConfig, run_downsample
from ai_wallpaper.scene.plan import Screen

DESK = [Screen("DP-1", 3840, 2160, 0, 0), Screen("DP-2", 1080, 1920, 3840, 0), Screen("DP-3", 3440, 1440, 4920, 0)]


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    master = Image.fromarray(rng.integers(0, 256, (4096, 7680, 3), dtype=np.uint8), "RGB")
    cuts = {}
    for screen in DESK:
        cfg = DownsampleConfig(screen.width, screen.height, "center")
        seconds = best(lambda cfg=cfg: cuts.__setitem__(cfg.width, run_downsample(master, cfg)), args.repeat)
        print(f"cut {screen.name} {screen.width}x{screen.height} from 7680x4096: {seconds:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        placed = []
        for screen in DESK:
            path = Path(tmp) / f"{screen.name}.png"
            cuts[screen.width].save(path, compress_level=1)
            placed.append((screen, path))
        seconds = best(lambda: compose_span(placed, Path(tmp) / "span.png"), args.repeat)
        width = max(s.x + s.width for s in DESK) - min(s.x for s in DESK)
        print(f"spanning canvas {width}x2160 (load, paste, save): {seconds:.3f} s")
    four_k = cuts[3840]
    print(f"night picture of 3840x2160: {best(lambda: night_variant(four_k), args.repeat):.3f} s")


if __name__ == "__main__":
    main()
