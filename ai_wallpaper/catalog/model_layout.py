"""What a model file or folder holds, read from headers and configs only (no weights loaded).

Used by model_sources.py to refuse the wrong kind of model before anything loads: a refiner given as
the base (or the reverse), a LoRA/VAE/SD1.x file given as an SDXL checkpoint, anything but an SDXL
VAE given as models.vae.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Literal

from ai_wallpaper.catalog.model_files import refuse_executable
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.untrusted_input import loads_json

Role = Literal["base", "refiner", "upscaler", "vae"]

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
            header = loads_json(fh.read(size))
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


# An SDXL VAE's latent space: 4 channels (SD3/Flux VAEs have 16). Both key layouts name these tensors,
# the original one optionally under a full checkpoint's "first_stage_model." or "vae." prefix.
SDXL_LATENT_CHANNELS = 4
_VAE_PREFIXES = ("", "first_stage_model.", "vae.")
VAE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin", ".pth")
VAE_HINT = ("set models.vae to an SDXL VAE: a diffusers AutoencoderKL folder (config.json + "
            "diffusion_pytorch_model.safetensors), a single VAE .safetensors file, or a hub id such as "
            "madebyollin/sdxl-vae-fp16-fix that is in the Hugging Face cache (or set models.allow_download: "
            "true); null uses the model's own VAE")


def check_vae_keys(shapes: dict[str, list[int]], setting: str, file: Path) -> None:
    """Refuse a weights file that is not a standalone SDXL VAE (a UNet/full checkpoint, a LoRA, an upscaler...)."""
    keys = shapes.keys()
    if any(k.startswith("model.diffusion_model.") for k in keys):
        raise ModelError(f"{setting}: {file} holds a Stable Diffusion UNet (a full checkpoint), not a VAE",
                         hint=VAE_HINT)
    if any("lora" in k.lower() for k in keys):
        raise ModelError(f"{setting}: {file} is a LoRA, not a VAE",
                         hint="LoRAs belong in the LoRA folder (loras.directory); " + VAE_HINT)
    decoder_in = next((shapes[p + "decoder.conv_in.weight"] for p in _VAE_PREFIXES
                       if p + "decoder.conv_in.weight" in shapes and p + "encoder.conv_in.weight" in shapes), None)
    if decoder_in is None:
        raise ModelError(f"{setting}: {file} holds no VAE (no encoder.conv_in/decoder.conv_in weights): it may "
                         "be an upscaler, a LoRA or another model's component", hint=VAE_HINT)
    channels = decoder_in[1] if len(decoder_in) == 4 else None
    if channels != SDXL_LATENT_CHANNELS:
        raise ModelError(f"{setting}: {file} is a VAE with {channels or 'unknown'} latent channels; SDXL's has "
                         f"{SDXL_LATENT_CHANNELS} (an SD3/Flux VAE does not fit SDXL)", hint=VAE_HINT)


def check_vae_file(file: Path, setting: str) -> None:
    """A single VAE file: a pickle is scanned now (its keys are checked when read, weights-only)."""
    if file.suffix.lower() not in VAE_FILE_SUFFIXES:
        raise ModelError(f"{setting}: {file} has an unsupported extension {file.suffix!r}",
                         hint=f"use one of {', '.join(VAE_FILE_SUFFIXES)}, or a diffusers VAE folder")
    if refuse_executable(file, setting) == "safetensors":
        check_vae_keys(safetensors_shapes(file), setting, file)


def check_vae_config(config: dict[str, Any], setting: str, where: str) -> None:
    """A diffusers VAE folder's config.json must describe an AutoencoderKL with SDXL's latent channels."""
    name = config.get("_class_name")
    if name != "AutoencoderKL":
        raise ModelError(f"{setting}: {where} holds a {name or 'model of unknown class'}, not an AutoencoderKL VAE",
                         hint=VAE_HINT)
    if config.get("latent_channels", SDXL_LATENT_CHANNELS) != SDXL_LATENT_CHANNELS:
        raise ModelError(f"{setting}: {where} is a VAE with {config.get('latent_channels')} latent channels; "
                         f"SDXL's has {SDXL_LATENT_CHANNELS}", hint=VAE_HINT)


def vae_weight_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("diffusion_pytorch_model*") if p.suffix in (".safetensors", ".bin"))


def check_vae_dir(directory: Path, setting: str, *, need_weights: bool = True) -> None:
    """A diffusers AutoencoderKL folder: config.json of an SDXL VAE, weights there, no pickle that runs code."""
    config_file = directory / "config.json"
    if not config_file.is_file():
        inner = (directory / "vae" / "config.json").is_file()
        raise ModelError(f"{setting}: {directory} is not a diffusers VAE folder (no config.json)",
                         hint=f"point it at {directory / 'vae'}" if inner else VAE_HINT)
    try:
        config = loads_json(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(f"{setting}: cannot read {config_file}: {err}") from err
    check_vae_config(config if isinstance(config, dict) else {}, setting, str(directory))
    weights = vae_weight_files(directory)
    if need_weights and not weights:
        raise ModelError(f"{setting}: {directory} has no VAE weights (diffusion_pytorch_model.safetensors)",
                         hint="copy the weights file next to config.json, or re-download the VAE")
    for file in weights:
        if file.suffix == ".bin":
            refuse_executable(file, setting)
