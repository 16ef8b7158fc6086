"""What a model file or folder holds, read from headers and configs only (no weights loaded).

Used by model_sources.py to refuse the wrong kind of model before anything loads: a refiner given as
the base (or the reverse), a LoRA/VAE/SD1.x file given as an SDXL checkpoint.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Literal

from ai_wallpaper.core.errors import ModelError

Role = Literal["base", "refiner", "upscaler"]

# The built-in recipe's widths (builtin.py): UNet conv_in channels and OpenCLIP width. A single file
# with these shapes is a converted built-in model, so the built-in dir is a correct config for it.
_BUILTIN_UNET_CONV_IN = 32
_BUILTIN_OPENCLIP_WIDTH = 64


def check_role_shape(role: Role, setting: str, where: str, *, is_refiner: bool) -> None:
    if role == "base" and is_refiner:
        raise ModelError(f"{setting}: {where} is an SDXL refiner (it has only the second text encoder), "
                         "not a base model",
                         hint="use it as models.refiner and set models.base to an SDXL base model")
    if role == "refiner" and not is_refiner:
        raise ModelError(f"{setting}: {where} is an SDXL base model (it has two text encoders), "
                         "not a refiner",
                         hint="set models.refiner to an SDXL refiner (e.g. stabilityai/stable-diffusion-xl-"
                              "refiner-1.0) or null to skip the refiner stage")


def safetensors_shapes(file: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a .safetensors header, without reading the (multi-GB) data."""
    try:
        with file.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ValueError("implausible header size")
            header = json.loads(fh.read(size))
    except (OSError, ValueError, struct.error) as err:
        raise ModelError(f"{file} is not a readable .safetensors file ({err})",
                         hint="re-download it; the file may be truncated") from err
    return {k: list(v.get("shape", [])) for k, v in header.items() if k != "__metadata__"}


def check_checkpoint_keys(shapes: dict[str, list[int]], role: Role, setting: str, file: Path) -> None:
    keys = shapes.keys()
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        raise ModelError(
            f"{setting}: {file} holds no Stable Diffusion UNet in the single-file layout "
            "(no 'model.diffusion_model.*' keys): it may be a LoRA, a VAE or a diffusers component file",
            hint="give a full SDXL checkpoint or a diffusers model directory")
    if any(k.startswith("cond_stage_model.") for k in keys):
        raise ModelError(f"{setting}: {file} is a Stable Diffusion 1.x/2.x checkpoint, not SDXL",
                         hint="this program needs an SDXL model")
    has_clip_l = any(k.startswith("conditioner.embedders.0.transformer.") for k in keys)
    has_openclip_1 = any(k.startswith("conditioner.embedders.1.model.") for k in keys)
    has_openclip_0 = any(k.startswith("conditioner.embedders.0.model.") for k in keys)
    if not (has_clip_l and has_openclip_1) and not has_openclip_0:
        raise ModelError(f"{setting}: {file} has no SDXL text encoders (no 'conditioner.embedders.*' keys)",
                         hint="this program needs a full SDXL checkpoint (UNet, VAE and text encoders)")
    check_role_shape(role, setting, str(file), is_refiner=has_openclip_0 and not has_clip_l)


def looks_like_builtin(shapes: dict[str, list[int]], role: Role) -> bool:
    conv_in = shapes.get("model.diffusion_model.input_blocks.0.0.weight", [])
    openclip_prefix = "conditioner.embedders.1.model." if role == "base" else "conditioner.embedders.0.model."
    pos = shapes.get(openclip_prefix + "positional_embedding", [])
    return (bool(conv_in) and conv_in[0] == _BUILTIN_UNET_CONV_IN
            and bool(pos) and pos[-1] == _BUILTIN_OPENCLIP_WIDTH)
