"""The same run rendered locally and on an InvokeAI server: per-stage seconds side by side.

    python -m bench.remote_vs_local --url http://127.0.0.1:9090 --base DIR [--refiner DIR] \\
        --server-base NAME [--server-refiner NAME] --server-upscaler NAME [--size 512x256]

DIR are local diffusers folders of the same models the server has installed under the NAMEs (for the
tiny test models: scripts/tiny_sdxl.py builds them, tests/invokeai_server.py installs them). Both runs
use the built-in tiny ESRGAN locally and the server's upscaler remotely, the same seed and steps, and
`ai-wallpaper generate` itself (a subprocess each), so the times include everything a user waits for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

STAGES = ("base", "refined", "upscaled", "enhanced", "final")


def run(settings: dict[str, Any], folder: Path) -> dict[str, Any]:
    cfg = folder / "settings.yaml"
    cfg.write_text(yaml.safe_dump(settings))
    out = folder / "run"
    done = subprocess.run([sys.executable, "-m", "ai_wallpaper", "generate", "--config", str(cfg), "--no-wallpaper",
                           "--save-stages", "--log-format", "json", "--output", str(out)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"generate failed ({done.returncode}): {done.stderr[-1500:]}")
    return dict(json.loads((out / "run.json").read_text())["stages"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--refiner")
    p.add_argument("--server-base", required=True)
    p.add_argument("--server-refiner")
    p.add_argument("--server-upscaler", required=True)
    p.add_argument("--size", default="512x256")
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    common: dict[str, Any] = {
        "seed": 7, "prompt": "a lighthouse on a cliff at dusk, volumetric light",
        "models": {"base": args.base, "refiner": args.refiner, "upscaler": "builtin:tiny", "device": "cpu"},
        "pipeline": {"txt2img": {"width": width, "height": height, "steps": args.steps},
                     "enhance": {"tile": 512, "overlap": 128, "steps": args.steps, "strength": 0.35}},
        "output": {"width": width * 2, "height": height * 2}, "weather": {"enabled": False},
        "loras": {"enabled": False}, "desktop": {"setter": "none"},
    }
    remote = {**common, "render": {"backend": "invokeai"},
              "invokeai": {"url": args.url, "models": {"base": args.server_base, "refiner": args.server_refiner,
                                                       "upscaler": args.server_upscaler}}}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "local").mkdir()
        (Path(tmp) / "remote").mkdir()
        local_stages = run(common, Path(tmp) / "local")
        remote_stages = run(remote, Path(tmp) / "remote")
    print(f"size {width}x{height} -> {width * 4}x{height * 4}, {args.steps} steps, server {args.url}")
    print(f"{'stage':<10} {'local s':>9} {'invokeai s':>11} {'server s':>9}")
    for stage in STAGES:
        here, there = local_stages.get(stage, {}), remote_stages.get(stage, {})
        server = (there.get("remote") or {}).get("server_seconds")
        print(f"{stage:<10} {here.get('seconds', 0):>9.2f} {there.get('seconds', 0):>11.2f} "
              f"{server if server is not None else '-':>9}")
    total = [sum(s.get("seconds", 0) for s in st.values()) for st in (local_stages, remote_stages)]
    print(f"{'total':<10} {total[0]:>9.2f} {total[1]:>11.2f}")


if __name__ == "__main__":
    main()
