"""Download the wheels the benchmarks need on the lent GPU machine (CPython 3.12, torch already there).

    python scripts/gpu_wheels.py [--dest .gpu-wheels]

Every package of the project's pinned runtime set except torch and what torch itself brings, for
CPython 3.12 on manylinux x86_64, without dependencies (the list is the closure), hash-checked by pip
against the index. bench/carried.py makes them importable there; the device tool carries the folder
(`carry: [".gpu-wheels"]`), so it must stay well under the 64 MiB carry limit.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

# pyproject's runtime pins without torch/torchvision, plus their own dependencies that a bare
# Python-with-torch lacks (torch brings numpy-free: filelock, fsspec, jinja2, networkx, sympy,
# typing_extensions). numpy and pillow are carried too: bench/carried.py lets the machine's own win.
PACKAGES = [
    "diffusers==0.42.1", "transformers==5.23.0", "tokenizers==0.23.3", "safetensors==0.8.0",
    "huggingface_hub==2.4.0", "hf-xet==1.8.0", "httpx2==2.17.0", "httpcore2==2.17.0", "h11==0.16.0",
    "anyio==4.16.0", "idna==3.21", "certifi==2026.10.19.post1", "spandrel==0.4.2", "einops==0.8.2",
    "compel==2.5.1", "pyparsing==3.3.3", "accelerate==1.15.0", "peft==0.21.2", "psutil==7.2.2",
    "PyYAML==6.0.4", "structlog==26.1.0", "regex==2026.12.2", "packaging==26.4", "tqdm==4.70.1",
    "importlib_metadata==10.2.0", "zipp==4.1.2", "requests==2.34.2", "urllib3==2.8.0",
    "charset-normalizer==3.5.3", "numpy==2.4.6", "pillow==13.0.0", "tzlocal==5.4.5",
]
LIMIT_BYTES = 60 * 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent.parent / ".gpu-wheels")
    args = p.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(args.dest), "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                    "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                    "--platform", "manylinux_2_28_x86_64", *PACKAGES], check=True)
    size = sum(f.stat().st_size for f in args.dest.glob("*.whl"))
    print(f"{args.dest}: {len(list(args.dest.glob('*.whl')))} wheels, {size / 2**20:.1f} MiB")
    if size > LIMIT_BYTES:
        raise SystemExit(f"{size / 2**20:.1f} MiB is over the {LIMIT_BYTES // 2**20} MiB budget for the carry")


if __name__ == "__main__":
    main()
