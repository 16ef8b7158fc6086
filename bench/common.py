"""Shared benchmark plumbing: speed switches, model loading, timing + peak memory rows, tables.

Speed switches (`SpeedOptions`) map onto the product's settings where a key exists and are applied
through the product's own `devices.apply_memory_options`; the two that have no settings key yet
(classic vs SDPA attention, an fp16-safe VAE) are applied here to the loaded pipe.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a benchmark never downloads anything
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ModelKind = Literal["builtin", "sdxl-random"]
Attention = Literal["sdpa", "classic", "sliced"]


@dataclass(frozen=True)
class SpeedOptions:
    """One benchmark configuration. Settings key each maps to, where there is one:
    dtype -> models.dtype; attention "sliced" -> models.memory.attention_slicing;
    channels_last -> models.memory.channels_last; compile -> models.memory.torch_compile;
    vae_tiling -> models.memory.vae_tiling; upscale_half -> pipeline.upscale.half_precision;
    batch_size -> pipeline.enhance.batch_size (None = auto, by free memory).
    No key yet (bench-level): attention "classic" vs "sdpa"; vae_fp16 (run the VAE in fp16 as an
    fp16-safe VAE such as sdxl-vae-fp16-fix allows, instead of upcasting it to fp32)."""

    dtype: str = "auto"
    attention: Attention = "sdpa"
    channels_last: bool = False
    compile: bool = False
    vae_tiling: bool = True
    vae_fp16: bool = False
    upscale_half: bool = True
    batch_size: int | None = None

    def label(self) -> str:
        parts = [self.dtype, self.attention]
        parts += [name for name in ("channels_last", "compile", "vae_fp16") if getattr(self, name)]
        parts.append(f"batch={self.batch_size or 'auto'}")
        if not self.upscale_half:
            parts.append("upscale_fp32")
        return " ".join(parts)


def device_choice(device: str, dtype: str) -> Any:
    """The product's device/dtype decision (devices.choose_device)."""
    from ai_wallpaper.render.devices import choose_device

    return choose_device(device, dtype)


def model_settings(opts: SpeedOptions, device: str, refiner: bool) -> Any:
    """ModelSettings through the schema (so the switches are validated like settings.yaml)."""
    from ai_wallpaper.config.settings import settings_from_dict

    data: dict[str, Any] = {
        "models": {
            # sdxl-random never resolves these: its pipes are built in bench/random_models.py
            "base": "builtin:tiny", "upscaler": "builtin:tiny",
            "refiner": "builtin:tiny-refiner" if refiner else None,
            "device": device, "dtype": opts.dtype,
            "memory": {"vae_tiling": opts.vae_tiling, "attention_slicing": opts.attention == "sliced",
                       "channels_last": opts.channels_last, "torch_compile": opts.compile},
        }
    }
    return settings_from_dict(data, file="<bench>").models


def apply_bench_switches(pipe: Any, opts: SpeedOptions) -> None:
    """The switches with no settings key: attention processor and fp16-safe VAE."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    if opts.attention == "classic":
        pipe.unet.set_attn_processor(AttnProcessor())
        pipe.vae.set_attn_processor(AttnProcessor())
    elif opts.attention == "sdpa":
        pipe.unet.set_attn_processor(AttnProcessor2_0())
        pipe.vae.set_attn_processor(AttnProcessor2_0())
    if opts.vae_fp16:
        # What an fp16-safe VAE (e.g. madebyollin/sdxl-vae-fp16-fix) permits: no fp32 upcast.
        pipe.vae.register_to_config(force_upcast=False)


@dataclass
class LoadedModels:
    base: Any
    refiner: Any | None
    upscaler: Any
    choice: Any
    rows: list[Row] = field(default_factory=list)


def load_models(model: ModelKind, opts: SpeedOptions, device: str = "auto", *, refiner: bool = False,
                cache_dir: Path | None = None) -> LoadedModels:
    """Base (+ refiner) pipes and the upscaler, switches applied; one timing row per model.

    builtin: the product loader (`models.load_sdxl`/`load_upscaler`) on the built-in tiny models.
    sdxl-random: full-size SDXL 1.0 / RealESRGAN_x4plus architectures with random weights
    (bench/random_models.py) built on the device, then the product's `apply_memory_options`.
    """
    from ai_wallpaper.core.paths import Paths
    from ai_wallpaper.render import model_loading as loading
    from ai_wallpaper.render.devices import apply_memory_options

    choice = device_choice(device, opts.dtype)
    settings = model_settings(opts, device, refiner)
    rows: list[Row] = []
    cache = cache_dir or Path(tempfile.mkdtemp(prefix="aiw-bench-"))
    paths = Paths(cache / "config", cache / "data", cache / "cache", cache / "state")
    ref = None
    if model == "builtin":
        with measure(rows, "load base"):
            base = loading.load_sdxl("builtin:tiny", "base", settings, paths, choice=choice)
        if refiner:
            with measure(rows, "load refiner"):
                ref = loading.load_sdxl("builtin:tiny-refiner", "refiner", settings, paths, choice=choice,
                                        share_with=base)
        with measure(rows, "load upscaler"):
            up = loading.load_upscaler("builtin:tiny", settings, paths, half=opts.upscale_half, choice=choice)
    else:
        from bench import random_models

        with measure(rows, "build base (random)"):
            base = random_models.build_sdxl_pipe("base", choice.device, choice.dtype)
            apply_memory_options(base, settings.memory, choice)
        if refiner:
            with measure(rows, "build refiner (random)"):
                ref = random_models.build_sdxl_pipe("refiner", choice.device, choice.dtype)
                apply_memory_options(ref, settings.memory, choice)
        with measure(rows, "build upscaler (random)"):
            up = random_models.build_upscaler(choice.device, opts.upscale_half)
    for pipe in (base, ref):
        if pipe is not None:
            apply_bench_switches(pipe, opts)
    return LoadedModels(base, ref, up, choice, rows)


# --- measuring -------------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    seconds: float
    peak_rss_mb: float
    peak_cuda_mb: float | None
    note: str = ""


def cuda_sync() -> None:
    import sys

    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


@contextmanager
def measure(rows: list[Row], name: str, note: str = "") -> Iterator[None]:
    """Wall time and peak RSS (sampled) / CUDA peak (allocator) of the block, appended to rows."""
    from ai_wallpaper.core.progress import PeakMemory

    peak = PeakMemory()
    cuda_sync()
    started = time.perf_counter()
    with peak.measure():
        yield
        cuda_sync()
    seconds = time.perf_counter() - started
    cuda = peak.peak_cuda / 2**20 if peak.peak_cuda is not None else None
    rows.append(Row(name, seconds, peak.peak_rss / 2**20, cuda, note))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    cuda_sync()
    started = time.perf_counter()
    result = fn()
    cuda_sync()
    return time.perf_counter() - started, result


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pastes straight into RESULTS.md and reads fine in a terminal)."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.1f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in text:
        cells = (c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").replace("-", "").replace("x", "").isdigit()


def stage_table(rows: Sequence[Row]) -> str:
    return format_table(["stage", "seconds", "peak RSS MB", "peak CUDA MB", "note"],
                        [[r.name, r.seconds, r.peak_rss_mb, r.peak_cuda_mb, r.note] for r in rows])


def machine_line() -> str:
    """Date, host CPU/GPU and library versions, for the header of every printed result."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    import diffusers

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = f", load avg {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    cpu = platform.processor() or platform.machine()
    return (f"{now}; {cpu}, {os.cpu_count()} CPU cores{load}, {gpu}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), diffusers {diffusers.__version__}")


def with_options(opts: SpeedOptions, **changes: Any) -> SpeedOptions:
    return replace(opts, **changes)


def quiet() -> None:
    """Warnings only from the product's structured logs: the tables are the output."""
    from ai_wallpaper.core import log

    log.configure("warning")


def set_threads(threads: int | None) -> None:
    """Pin torch's CPU threads (on a shared 2-core box, oversubscribed OpenMP threads spin and
    slow everything down many times over; 1 thread is steadier under load)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def enhance_config(prompt: str, negative_prompt: str = "blurry", seed: int = 1, **changes: Any) -> Any:
    """The product's EnhanceConfig for the default settings, with `changes` (tile, steps, ...)."""
    from ai_wallpaper.config.settings import Settings
    from ai_wallpaper.render.stages.enhance import EnhanceConfig

    cfg = EnhanceConfig.from_settings(Settings(), prompt=prompt, negative_prompt=negative_prompt, seed=seed)
    return replace(cfg, **changes)


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1024' -> (1920, 1024)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ValueError(f"size must look like 1920x1024, got {text!r}") from err
    return w, h


def sample_image(width: int, height: int, seed: int = 0) -> Any:
    """A deterministic seam-free textured RGB image (smooth colour fields + fine detail), standing in
    for an upscaled picture when only the enhancement stage is measured."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for _ in range(3):
        f1, f2 = rng.uniform(2, 6, size=2)
        phase = rng.uniform(0, 6.28, size=2)
        wave_x = np.sin(f1 * 6.28 * x / width + phase[0])
        base = 0.5 + 0.25 * wave_x * np.cos(f2 * 6.28 * y / height + phase[1])
        channels.append(base)
    array = np.stack(channels, axis=-1)
    coarse = rng.normal(0, 0.08, size=(height // 16 + 1, width // 16 + 1, 3)).astype(np.float32)
    detail = np.asarray(Image.fromarray(((coarse + 0.5).clip(0, 1) * 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0 - 0.5
    grain = rng.normal(0, 0.02, size=(height, width, 3)).astype(np.float32)
    out = (array + detail + grain).clip(0, 1)
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8), mode="RGB")
