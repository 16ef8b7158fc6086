"""The settings schema (config/settings.yaml): every key, its type, default, bounds and docs.

This module is the single source of truth: validation, the shipped sample
(`ai-wallpaper config sample`) and `run.json` all come from these dataclasses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ai_wallpaper.config.sample import to_plain
from ai_wallpaper.config.schema import KeyPath, Source, build_or_raise, option
from ai_wallpaper.config.urls import url_problem
from ai_wallpaper.config.vocabulary import (
    SEED_MAX,
    Anchor,
    BlendKind,
    SchedulerName,
    tile_fit_problem,
    tile_margin_problem,
    tile_overlap_problem,
)
from ai_wallpaper.config.yaml_loading import load_yaml

Check = list[tuple[KeyPath, str] | tuple[KeyPath, str, str]]
# desktop/setters.py has one setter for each name here except auto and none (a test keeps them equal).
DesktopSetter = Literal["auto", "none", "gnome", "kde", "xfce", "cinnamon", "mate", "lxqt", "lxde", "sway",
                        "hyprland", "swww", "feh", "xwallpaper", "macos", "windows", "command"]


@dataclass(frozen=True)
class MemoryOptions:
    vae_tiling: bool = option(True, "Decode/encode large images with the VAE in tiles (needed at 8K).")
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


@dataclass(frozen=True)
class UpscaleSettings:
    tile: int = option(512, "Upscaler input tile size in pixels; halved automatically on out-of-memory.",
                       min=32, max=4096, multiple_of=8)
    overlap: int = option(32, "Context around each upscaler tile, input pixels; cropped off.", min=0, max=1024)
    half_precision: bool = option(True, "Run the upscaler in float16 on CUDA (ignored on CPU).")

    def check(self) -> Check:
        problem = tile_margin_problem(self.tile, self.overlap)
        return [(("overlap",), *problem)] if problem else []


@dataclass(frozen=True)
class EnhanceSettings:
    enabled: bool = option(True, "Run the tiled img2img detail pass at 8K.")
    tile: int = option(1024, "Tile size in pixels (a multiple of 64).", min=64, max=4096, multiple_of=64)
    overlap: int = option(256, "Overlap between tiles in pixels (a multiple of 8, less than tile).",
                          min=0, max=4032, multiple_of=8)
    strength: float = option(0.35, "How much to repaint: 0 keeps the image, 1 ignores it.", min=0.0, max=1.0)
    steps: int = option(30, "Nominal steps; about strength x steps are actually run.", min=1, max=500)
    guidance_scale: float = option(5.0, "CFG scale for the detail pass.", min=0.0, max=30.0)
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


@dataclass(frozen=True)
class LocationSettings:
    latitude: float | None = option(None, "Decimal degrees, north positive (sent rounded to 0.01, about 1 km).",
                                    min=-90, max=90)
    longitude: float | None = option(None, "Decimal degrees, east positive (sent rounded to 0.01).",
                                     min=-180, max=180)
    place: str | None = option(None, "A place name, resolved once to lat/lon (Open-Meteo geocoding) and cached.",
                               example="Lisbon, Portugal")


@dataclass(frozen=True)
class WeatherSettings:
    enabled: bool = option(True, "Fetch the weather to set the mood. A failure never blocks a run.")
    provider: Literal["open-meteo", "nws"] = option("open-meteo", "open-meteo (global, no key) or nws (US only).")
    location: LocationSettings = option(factory=LocationSettings,
                                        doc="Where you are. Unset: mood from time and season.")
    cache_minutes: int = option(30, "Use a cached report younger than this.", min=0, max=1440)
    stale_hours: int = option(12, "On failure, accept a cached report up to this old (marked stale).", min=0, max=168)
    connect_timeout: float = option(3.0, "Seconds to connect.", min=0.1, max=60)
    read_timeout: float = option(10.0, "Seconds to wait for each piece of data.", min=0.1, max=120)
    deadline_seconds: float = option(
        10.0, "Wall-clock limit for the whole fetch, all requests together (geocoding included).\n"
        "Past it the run goes on with a stale cached report or none.", min=1, max=60)
    open_meteo_url: str = option("https://api.open-meteo.com/v1/forecast", "Forecast endpoint (https).")
    geocoding_url: str = option("https://geocoding-api.open-meteo.com/v1/search",
                                "Place-name lookup endpoint (https).")
    nws_url: str = option("https://api.weather.gov",
                          "NWS API root (https); its forecast URLs must stay on this host.")

    def check(self) -> Check:
        problems: Check = []
        for key in ("open_meteo_url", "geocoding_url", "nws_url"):
            url: str = getattr(self, key)
            problem = url_problem(url)
            if problem:
                hint = ("use https://" + url.split("://", 1)[1] if url.lower().startswith("http://")
                        else "use an https:// URL such as " + getattr(WeatherSettings(), key))
                problems.append(((key,), f"{url!r} {problem}", hint))
        return problems


@dataclass(frozen=True)
class ThemeSettings:
    file: str | None = option(None, "themes.yaml to use; null = <config dir>/themes.yaml, else the shipped one.")
    avoid_recent: int = option(5, "Do not pick any of the last N themes again (history).", min=0, max=1000)


@dataclass(frozen=True)
class LoraSettings:
    enabled: bool = option(True, "Let the LoRASelector add LoRAs from your library.")
    file: str | None = option(None, "loras.yaml; null = <config dir>/loras.yaml, else the shipped one.")
    directory: str | None = option(None, "Folder with the LoRA files; null = <data dir>/loras.")


@dataclass(frozen=True)
class ScheduleSettings:
    cron: str | None = option("0 7 * * *",
                              "Crontab line (min hour day month weekday). Ignored if interval_minutes is set.")
    interval_minutes: int | None = option(None, "Run every N minutes instead of the cron line.", min=1)
    interval_seconds: int | None = option(None, "Run every N seconds (testing); overrides the others.", min=1)
    timezone: str | None = option(None, "IANA time zone for the schedule, e.g. Europe/Lisbon; null = system zone.")
    jitter_seconds: int = option(0, "Random delay added to each run.", min=0, max=86400)
    misfire_grace_seconds: int = option(3600, "A run late by up to this still fires.", min=1)
    catch_up: bool = option(True, "At start, run once if a scheduled run was missed while off or asleep.")
    run_timeout_minutes: int = option(180, "Kill a generation that takes longer than this.", min=1)


@dataclass(frozen=True)
class DesktopSettings:
    setter: DesktopSetter = option("auto", "Which desktop to set: auto detects it; none only writes the file.")
    command: list[str] = option(factory=list, doc="For setter 'command': argv; '{path}' is replaced by the image path.",
                                example=["my-setter", "--image", "{path}"])
    keep: int = option(10, "How many wallpaper files to keep (favorites are never pruned).", min=1, max=10000)
    mode: Literal["zoom", "fill", "center", "scale", "tile"] = option("zoom", "How the desktop fits the image.")


@dataclass(frozen=True)
class HistorySettings:
    keep_runs: int = option(100, "Run directories to keep (favorites are never pruned).", min=1)


@dataclass(frozen=True)
class LoggingSettings:
    level: Literal["debug", "info", "warning", "error"] = option("info", "Log level.")
    format: Literal["auto", "console", "json"] = option("auto", "auto: console on a terminal, JSON lines otherwise.")


@dataclass(frozen=True)
class Settings:
    seed: int | None = option(None, "Fixed seed for every run; null = a new random seed each run.", min=0,
                              max=SEED_MAX)
    prompt: str | None = option(None, "Fixed prompt; null = pick a theme each run.")
    models: ModelSettings = option(factory=ModelSettings, doc="Which models to load and how.")
    pipeline: PipelineSettings = option(factory=PipelineSettings, doc="The generation stages.")
    output: OutputSettings = option(factory=OutputSettings, doc="Final size, cropping and files.")
    themes: ThemeSettings = option(factory=ThemeSettings, doc="Theme selection.")
    loras: LoraSettings = option(factory=LoraSettings, doc="LoRA library.")
    weather: WeatherSettings = option(factory=WeatherSettings, doc="Weather mood.")
    schedule: ScheduleSettings = option(factory=ScheduleSettings, doc="When the daemon runs.")
    desktop: DesktopSettings = option(factory=DesktopSettings, doc="Setting the wallpaper.")
    history: HistorySettings = option(factory=HistorySettings, doc="Run history and pruning.")
    logging: LoggingSettings = option(factory=LoggingSettings, doc="Log output.")

    def check(self) -> Check:
        problems: Check = []
        tw, th = self.pipeline.txt2img.width, self.pipeline.txt2img.height
        enh = self.pipeline.enhance
        f = self.output.upscale_factor
        if enh.enabled and (fit := tile_fit_problem(enh.tile, tw * f, th * f)):
            problems.append((("pipeline", "enhance", "tile"), *fit))
        if self.schedule.cron is None and self.schedule.interval_minutes is None \
                and self.schedule.interval_seconds is None:
            problems.append((("schedule",), "needs cron, interval_minutes or interval_seconds"))
        if self.desktop.setter == "command" and not self.desktop.command:
            problems.append((("desktop", "command"), "setter 'command' needs a command",
                             "e.g. command: [my-setter, '{path}']"))
        return problems

    def fingerprint(self) -> str:
        """Stable hash of the recipe, everything that can change the image (recorded in run.json)."""
        relevant = _pick(to_plain(self), RECIPE)
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def with_recipe_of(self, recorded: Settings) -> Settings:
        """These settings with `recorded`'s recipe: how `--resume` finishes the image it started while
        everything that runs commands, writes files or connects anywhere comes from today's config."""
        data = to_plain(self)
        picked = _pick(to_plain(recorded), RECIPE)
        for section, values in picked.items():
            data[section].update(values)
        return build_or_raise(Settings, data, Source("<resumed settings>"))


# The recipe: all a resumed run takes from its run.json. An allow-list, so a setting added later (a
# command, a directory, a server; models.allow_download, which lets a load reach the network) is never read.
RECIPE: dict[str, tuple[str, ...]] = {
    "models": ("base", "base_config", "refiner", "refiner_config", "upscaler", "device", "dtype", "memory"),
    "pipeline": ("txt2img", "refine", "upscale", "enhance"),
    "output": ("width", "height", "anchor", "upscale_factor"),
}


def _pick(data: dict[str, Any], keys: dict[str, tuple[str, ...]]) -> dict[str, dict[str, Any]]:
    return {section: {k: data[section][k] for k in names} for section, names in keys.items()}


def load_settings(path: Path | None) -> tuple[Settings, Source]:
    """Load and validate settings; None means all defaults (the caller decides when the file is optional)."""
    if path is None:
        return Settings(), Source("<defaults>")
    data, source = load_yaml(path)  # a missing file is a ConfigError naming it, whatever its name
    return build_or_raise(Settings, data, source), source


def settings_from_dict(data: dict[str, Any], file: str = "<dict>") -> Settings:
    return build_or_raise(Settings, data, Source(file))
