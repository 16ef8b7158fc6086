"""Can this run work at all? Sizes, tile counts, memory and models, checked before anything loads.

One list of problems serves three commands, so they never disagree: `config validate` reports all of
them, `plan` shows the estimates and refuses impossible work, and `generate` refuses before it
creates a run folder or a history row.

The memory figures are estimates from the real SDXL/RRDBNet architectures (parameter counts of the
public models; activation sizes from the tensor shapes each stage holds at once), not measurements.
They are deliberately coarse: a run is refused only when its estimate exceeds the machine's whole
memory (RAM + swap, or the GPU's total memory), i.e. when it cannot work, never because other
programs happen to use memory now. Torch-free: `plan` stays instant.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from ai_wallpaper.catalog.builtin import is_builtin
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core.errors import ConfigError, ModelError, RunError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.devices import VAE_TILE_PX
from ai_wallpaper.render.stages.tile_layout import enhance_grid
from ai_wallpaper.render.stages.tiling import tiling_problems
from ai_wallpaper.render.stages.upscale import activation_bytes_per_pixel, tile_for_memory
from ai_wallpaper.scene.plan import Plan

# Parameter counts of the public models (bench/configs, counted on the meta device).
SDXL_BASE_PARAMS = 3_469_000_000  # UNet 2567.5 M + VAE 83.7 M + CLIP-L 123.1 M + OpenCLIP bigG 694.7 M
SDXL_REFINER_PARAMS = 3_038_000_000  # UNet 2259.5 M + VAE 83.7 M + OpenCLIP bigG 694.7 M
UPSCALER_PARAMS = 16_700_000  # RRDBNet (RealESRGAN_x4plus)
BUILTIN_PARAMS = 10_000_000  # the built-in tiny models are far below this
# Sane bounds on work: the default 8K run has 50 enhancement and 8 upscaler tiles.
MAX_ENHANCE_TILES = 2048
MAX_UPSCALE_TILES = 16384
_UNET_WIDEST = 1280  # channels at SDXL's deepest level
_LIVE_TENSORS = 8  # activations of that width alive at once (skip connections, attention)
_VAE_CHANNELS = 128  # channels at the VAE's full-resolution level


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    tiles: int  # tiles per pass (UNet step or upscaler pass); 1 = untiled
    peak_bytes: int  # estimated peak memory of the process during this stage

    def describe(self) -> str:
        tiles = f", {self.tiles} tiles" if self.tiles > 1 else ""
        return f"{self.stage}: ~{gib(self.peak_bytes)}{tiles}"


@dataclass(frozen=True)
class Memory:
    device: str  # "cpu" or "cuda"
    limit_bytes: int  # RAM + swap on the CPU, the GPU's total memory on CUDA
    what: str


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def element_bytes(settings: Settings, device: str) -> int:
    dtype = settings.models.dtype
    if dtype == "auto":
        return 4 if device == "cpu" else 2
    return 4 if dtype == "float32" else 2


def _tiles(length: int, tile: int, overlap: int) -> int:
    if tile >= length:
        return 1
    stride = max(1, tile - overlap)
    return -(-(length - tile) // stride) + 1


def estimate(settings: Settings, device: str = "cpu", memory_bytes: int | None = None) -> list[StageEstimate]:
    """Peak memory and tile count of each stage for these settings on `device`; `memory_bytes` is what
    an automatic upscaler tile adapts to (stages/upscale.py tile_for_memory; None: one whole pass)."""
    b = element_bytes(settings, device)
    m, p, o = settings.models, settings.pipeline, settings.output
    base_w = (BUILTIN_PARAMS if is_builtin(m.base) else SDXL_BASE_PARAMS) * b
    refiner_w = 0 if not m.refiner else (BUILTIN_PARAMS if is_builtin(m.refiner) else SDXL_REFINER_PARAMS) * b
    w, h = p.txt2img.width, p.txt2img.height
    big_w, big_h = w * o.upscale_factor, h * o.upscale_factor

    def unet_act(px_w: int, px_h: int, batch: int = 1) -> int:
        return 2 * batch * (px_w // 8) * (px_h // 8) * _UNET_WIDEST * _LIVE_TENSORS * b  # 2 = CFG branches

    def vae_act(px_w: int, px_h: int) -> int:
        return px_w * px_h * _VAE_CHANNELS * b * 3

    out: list[StageEstimate] = []
    out.append(StageEstimate("base", 1, base_w + refiner_w + unet_act(w, h) + vae_act(w, h)))
    if m.refiner:
        out.append(StageEstimate("refined", 1, base_w + refiner_w + unet_act(w, h) + vae_act(w, h)))
    u = p.upscale
    up_tile = u.tile if u.tile != "auto" else (
        max(w, h) if memory_bytes is None else tile_for_memory(w, h, o.upscale_factor, u.overlap, b, memory_bytes))
    up_tiles = _tiles(w, up_tile, 0) * _tiles(h, up_tile, 0)  # core tiles; the overlap is context around each
    tile_px = min(up_tile + 2 * u.overlap, w) * min(up_tile + 2 * u.overlap, h)
    up_act = tile_px * activation_bytes_per_pixel(o.upscale_factor, b)
    image_f32 = big_w * big_h * 3 * 4
    out.append(StageEstimate("upscaled", up_tiles, UPSCALER_PARAMS * b + up_act + 3 * image_f32))
    e = p.enhance
    if e.enabled:
        grid = enhance_grid(big_h // 8, big_w // 8, e.tile // 8, e.overlap // 8)
        enh_tiles, tile_h, tile_w = len(grid), grid[0].h * 8, grid[0].w * 8
        batch = 1 if e.batch_size == "auto" else int(e.batch_size)
        latents = (big_w // 8) * (big_h // 8) * 4 * 4 * 6  # latents, noise, blended predictions, weights...
        vae_tile = min(VAE_TILE_PX, big_w) * min(VAE_TILE_PX, big_h)
        peak = base_w + 2 * image_f32 + latents + max(unet_act(tile_w, tile_h, batch), vae_act(vae_tile, 1))
        out.append(StageEstimate("enhanced", enh_tiles, peak))
    out.append(StageEstimate("final", 1, big_w * big_h * 3 * 2 + o.width * o.height * 3 * 2))
    return out


def machine_memory(settings: Settings) -> Memory:
    """RAM + swap, or the first GPU's memory when the run will use CUDA (torch-free: nvidia-smi)."""
    import psutil

    device = settings.models.device
    if device in ("auto", "cuda"):
        vram = _nvidia_total_bytes()
        if vram:
            return Memory("cuda", vram, f"GPU memory {gib(vram)}")
    ram, swap = psutil.virtual_memory().total, psutil.swap_memory().total
    return Memory("cpu", ram + swap, f"RAM {gib(ram)} + swap {gib(swap)}")


def _nvidia_total_bytes() -> int | None:
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    try:
        out = subprocess.run([binary, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
        return int(out.split()[0]) * 2**20
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def work_problems(settings: Settings, memory: Memory | None = None) -> tuple[list[StageEstimate], list[str]]:
    """(estimates, problems): sizes the stages cannot handle, absurd tile counts, too little memory."""
    problems = size_problems(settings)
    memory = memory or machine_memory(settings)
    estimates = estimate(settings, memory.device, memory.limit_bytes)
    limits = {"upscaled": (MAX_UPSCALE_TILES, "pipeline.upscale.tile"),
              "enhanced": (MAX_ENHANCE_TILES, "pipeline.enhance.tile")}
    for est in estimates:
        if est.stage in limits and est.tiles > limits[est.stage][0]:
            limit, key = limits[est.stage]
            problems.append(f"{key}: the {est.stage} stage would need {est.tiles} tiles per pass "
                            f"(limit {limit}); raise the tile size or lower the image size")
        # On CUDA, offloading keeps most weights in RAM: only check the GPU when everything stays there.
        offloaded = memory.device == "cuda" and settings.models.memory.cpu_offload != "none"
        if not offloaded and est.peak_bytes > memory.limit_bytes:
            fix = ("set models.memory.cpu_offload: model, or lower the sizes" if memory.device == "cuda" else
                   "lower the sizes (pipeline.txt2img.width/height, output.upscale_factor) or the tiles, "
                   "or use bfloat16 (models.dtype)")
            problems.append(f"the {est.stage} stage needs about {gib(est.peak_bytes)} but this machine has "
                            f"{memory.what}; {fix}")
    return estimates, problems


def size_problems(settings: Settings) -> list[str]:
    """What the stages themselves would refuse late: the enhancement's tiling of the upscaled image."""
    from ai_wallpaper.render.stages.tiling import validate_tiling

    e, t, f = settings.pipeline.enhance, settings.pipeline.txt2img, settings.output.upscale_factor
    if not e.enabled:
        return []
    try:
        validate_tiling(t.height * f, t.width * f, e.tile, e.overlap)
    except ValueError as exc:
        return [str(exc)]
    return []


def model_problems(settings: Settings, paths: Paths) -> list[str]:
    """Every model setting that cannot be resolved (all of them, not the first)."""
    from ai_wallpaper.catalog.model_sources import resolve_source
    from ai_wallpaper.render.model_holder import model_specs

    m = settings.models
    problems = []
    for role, spec in model_specs(m).items():
        if not spec:
            continue
        try:
            resolve_source(spec, role, m, paths)
        except ModelError as exc:
            problems.append(str(exc))
    return problems


def preflight(settings: Settings, paths: Paths) -> None:
    """Fail before a run directory or history row exists: sizes, tiles, memory and every model. With
    render.backend invokeai the models and the memory are the server's: checked when the run connects."""
    if settings.render.backend != "local":
        return
    _, problems = work_problems(settings)
    if problems:
        raise ConfigError(problems, hint="`ai-wallpaper plan` shows each stage's estimate")
    problems = model_problems(settings, paths)
    if len(problems) == 1:
        raise ModelError(problems[0])
    if problems:
        raise ModelError(f"{len(problems)} models cannot be used:\n" + "\n".join(f"  - {p}" for p in problems))


def check_sizes(settings: Settings, plan: Plan) -> None:
    """Everything that would fail late, checked before any model loads."""
    base, up = plan.base_size, plan.upscaled_size
    t, f = settings.pipeline.txt2img, settings.output.upscale_factor
    problems = []
    # The stage configs take their sizes from the settings; the plan recorded what they must give.
    if (base.width, base.height) != (t.width, t.height):
        problems.append(f"base size {base} is not pipeline.txt2img {t.width}x{t.height}")
    if (base.width * f, base.height * f) != (up.width, up.height):
        problems.append(f"upscaled size {up} is not base size {base} x output.upscale_factor {f}")
    enh = settings.pipeline.enhance
    if enh.enabled:
        problems += tiling_problems(up.height, up.width, enh.tile, enh.overlap)
    if problems:
        raise RunError("; ".join(problems), hint="fix pipeline.* / output.* sizes in the settings")
