"""The settings of what is rendered and how: `models:`, `pipeline:` and `output:` of settings.yaml.

Part of the settings schema (config/settings.py assembles the whole file from these sections).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ai_wallpaper.config.schema import KeyPath, option
from ai_wallpaper.config.vocabulary import (
    Anchor,
    BlendKind,
    SchedulerName,
    tile_margin_problem,
    tile_overlap_problem,
)

Check = list[tuple[KeyPath, str] | tuple[KeyPath, str, str]]


@dataclass(frozen=True)
class MemoryOptions:
    vae_tiling: Literal["auto", "always", "never"] | bool = option(
        "auto", "Run the VAE in tiles: auto = only for images over 1920x1080 px or after an out-of-memory\n"
        "error (tiles leave faint tone steps, so the 1920x1024 base is decoded whole); always; never.\n"
        "true/false (older files) mean always/never.")
    attention_slicing: bool = option(False, "Compute attention in slices: less memory, a little slower.")
    cpu_offload: Literal["none", "model", "sequential"] = option(
        "none", "Move sub-models to the GPU only while they run. 'model' saves memory at small cost;\n"
        "'sequential' saves most and is slowest.")
    channels_last: bool = option(False, "Use channels-last memory layout for the UNet and VAE (faster on CUDA).")
    torch_compile: bool = option(False, "torch.compile the UNet for the fixed enhancement tile shape (CUDA).")


@dataclass(frozen=True)
class ModelSettings:
    base: str = option(
        "stabilityai/stable-diffusion-xl-base-1.0",
        "SDXL base model: a hub id (needs allow_download or a filled hub cache), a local diffusers\n"
        "directory, a single .safetensors/.ckpt file, or 'builtin:tiny' (offline self-test model,\n"
        "random weights: its images are not meaningful). A relative path is looked up in the data\n"
        "dir's models/ folder only (never the current directory). Weights are read as data only:\n"
        "pickled files through torch's weights-only loader, TorchScript archives are refused.")
    base_config: str | None = option(
        None, "For a single-file base: a local diffusers directory holding the matching configs, so\n"
        "nothing is fetched (relative: under the data dir's models/). Defaults to the built-in SDXL\n"
        "config layout.")
    refiner: str | None = option(None, "SDXL refiner, same forms as `base`; null disables the refiner stage.",
                                 example="stabilityai/stable-diffusion-xl-refiner-1.0")
    refiner_config: str | None = option(None, "Local diffusers config directory for a single-file refiner.")
    vae: str | None = option(
        None, "A separate VAE for the base and the refiner; null = each model's own VAE. A hub id (from the\n"
        "local hub cache unless allow_download), a local diffusers AutoencoderKL folder (config.json +\n"
        "diffusion_pytorch_model.safetensors) or a single VAE file (.safetensors; .ckpt/.pt/.bin/.pth are\n"
        "read weights-only), which takes the VAE config of the model it goes into. Relative paths: under\n"
        "the data dir's models/ only. An fp16-fix VAE folder or hub id has force_upcast: false in its\n"
        "config, so float16 runs skip the float32 upcast of the VAE (a single file keeps the model's\n"
        "config, so use the folder form for that).", example="madebyollin/sdxl-vae-fp16-fix")
    upscaler: str = option(
        "RealESRGAN_x4plus.pth",
        "4x upscaler weights loaded with spandrel (.pth/.safetensors: Real-ESRGAN, 4x-UltraSharp,\n"
        "SwinIR, HAT...). A relative path is looked up in the data dir's models/ folder only.\n"
        "Read as tensors only (never torch.jit.load); TorchScript archives are refused.\n"
        "'builtin:tiny' is a small random-weight ESRGAN for offline self-tests.")
    allow_download: bool = option(False, "Let hub ids download missing files. Off: only the local hub cache.")
    device: Literal["auto", "cuda", "mps", "cpu"] = option("auto", "Where to run: auto picks CUDA, then MPS, then CPU.")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = option(
        "auto", "Numeric precision: auto is float16 on CUDA/MPS and float32 on CPU.")
    deterministic: bool = option(
        False, "CUDA: use deterministic algorithms, so a rerun with the same seed, settings, GPU, dtype and\n"
        "batch size is bit-identical (somewhat slower). CPU runs are always deterministic.")
    memory: MemoryOptions = option(factory=MemoryOptions, doc="Memory-saving switches.")


@dataclass(frozen=True)
class Txt2ImgSettings:
    width: int = option(1920, "Base image width in pixels.", min=64, max=4096, multiple_of=8)
    height: int = option(1024, "Base image height in pixels.", min=64, max=4096, multiple_of=8)
    steps: int = option(50, "Denoising steps.", min=1, max=500)
    guidance_scale: float = option(7.5, "Classifier-free guidance (CFG) scale.", min=0.0, max=30.0)
    scheduler: SchedulerName = option(
        "dpmpp_2m_karras", "Sampler. dpmpp_2m_karras = DPM++ 2M with Karras sigmas.")
    negative_prompt: str = option(
        "blurry, low quality, jpeg artifacts, watermark, text, signature, deformed",
        "Negative prompt used for every stage (themes may add to it).")


@dataclass(frozen=True)
class RefineSettings:
    high_noise_frac: float = option(
        0.8, "Ensemble of experts: the base denoises until this fraction, the refiner finishes.", min=0.05, max=0.95)
    steps: int | None = option(None, "Refiner steps; null = same as txt2img.steps.", min=1, max=500)
    adaptive: list[float] = option(
        factory=list, doc="Adaptive refinement: try each of these switch points (high_noise_frac values) and keep\n"
        "the refined image with the best quality score (sharp, not noisy; run.json records every try).\n"
        "Each try runs the base and the refiner again. Empty: off, high_noise_frac alone.",
        example=[0.7, 0.8, 0.9])

    def check(self) -> Check:
        bad = [f for f in self.adaptive if not 0.05 <= f <= 0.95]
        if bad:
            return [(("adaptive",), f"switch points must be from 0.05 to 0.95, got {bad}", "e.g. [0.7, 0.8, 0.9]")]
        if len(self.adaptive) > 5:
            return [(("adaptive",), f"at most 5 switch points (each reruns both models), got {len(self.adaptive)}")]
        return []


@dataclass(frozen=True)
class UpscaleSettings:
    tile: int | Literal["auto"] = option(
        "auto", "Upscaler input tile size in pixels, or auto: the whole image in one pass when it fits in half\n"
        "the free memory (fastest: no margins computed twice), else the largest tile that does. Halved\n"
        "automatically on out-of-memory.", min=32, max=4096, multiple_of=8)
    # 48: with the real RealESRGAN_x4plus the tiled result is within 5/255 of an untiled pass (32: 21/255);
    # bench/upscale_tiling.py measures it.
    overlap: int = option(48, "Context around each upscaler tile, input pixels; cropped off.", min=0, max=1024)
    half_precision: bool = option(True, "Run the upscaler in float16 on CUDA (ignored on CPU).")

    def check(self) -> Check:
        problem = tile_margin_problem(self.tile, self.overlap) if isinstance(self.tile, int) else None
        return [(("overlap",), *problem)] if problem else []


@dataclass(frozen=True)
class EnhanceSettings:
    enabled: bool = option(True, "Run the tiled img2img detail pass at 8K.")
    tile: int = option(1024, "Largest tile side in pixels (a multiple of 64). Per axis the fewest tiles that keep\n"
                       "the overlap are used, each as small as that allows (tiles may be non-square).",
                       min=64, max=4096, multiple_of=64)
    # The default is the floor we recommend: 64 px = 8 latent pixels = two cells of the SDXL UNet's deepest
    # (4x downsampled) level; a narrower blend band hands over inside one cell of the coarsest features
    # (bench/RESULTS.md). Smaller values stay allowed for small self-test images.
    overlap: int = option(64, "Minimum overlap between neighbouring tiles in pixels (a multiple of 8, less than\n"
                          "tile); tiles are spread evenly, so most overlap more. Below 64 tile borders may show.",
                          min=0, max=4032, multiple_of=8)
    strength: float = option(0.35, "How much to repaint: 0 keeps the image, 1 ignores it.", min=0.0, max=1.0)
    steps: int = option(30, "Nominal steps; about strength x steps are actually run.", min=1, max=500)
    guidance_scale: float = option(5.0, "CFG scale for the detail pass.", min=0.0, max=30.0)
    scheduler: SchedulerName | None = option(
        None, "Sampler for the detail pass (same names as pipeline.txt2img.scheduler); null = the same\n"
        "as pipeline.txt2img.scheduler. Ancestral samplers (euler_a) stay deterministic per seed.",
        example="euler_a")
    blend: BlendKind = option("gaussian", "Weight profile used to blend tile noise predictions.")
    batch_size: int | Literal["auto"] = option(
        "auto", "Tiles per UNet call; auto picks from free memory. Does not change the result.", min=1, max=64)

    def check(self) -> Check:
        problem = tile_overlap_problem(self.tile, self.overlap)
        return [(("overlap",), *problem)] if problem else []


@dataclass(frozen=True)
class OutputSettings:
    width: int = option(3840, "Final wallpaper width.", min=64, max=16384)
    height: int = option(2160, "Final wallpaper height.", min=64, max=16384)
    anchor: Anchor = option("center", "Where to crop when the aspect ratio differs (no stretching ever).")
    upscale_factor: int = option(4, "Upscale target = base size x this (must match the upscaler model).", min=1, max=8)
    runs_dir: str | None = option(None, "Where run directories go; null = <data dir>/runs.")
    save_stages: bool = option(False, "Save every intermediate image (same as --save-stages).")
    intermediate_compress_level: int = option(1, "PNG zlib level for 8K intermediates (1 is fast).", min=0, max=9)
    final_compress_level: int = option(6, "PNG zlib level for the final image.", min=0, max=9)


@dataclass(frozen=True)
class PipelineSettings:
    txt2img: Txt2ImgSettings = option(factory=Txt2ImgSettings, doc="Stage 1: SDXL text-to-image.")
    refine: RefineSettings = option(factory=RefineSettings, doc="Stage 2: SDXL refiner (only if models.refiner).")
    upscale: UpscaleSettings = option(factory=UpscaleSettings, doc="Stage 3: 4x upscale.")
    enhance: EnhanceSettings = option(factory=EnhanceSettings, doc="Stage 4: latent-blended tiled detail pass.")
