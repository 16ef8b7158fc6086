"""Where and in what precision the models run, and the memory switches applied to a loaded pipeline.

Importing this module does not import torch; `decide_device` is the pure rule behind `choose_device`,
so it can be tested for every machine on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ai_wallpaper.config.render_settings import MemoryOptions
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ModelError

if TYPE_CHECKING:
    import torch

logger = log.get(__name__)
# The VAE's tiled mode blends overlapping tiles and leaves faint tone steps at their borders with real
# SDXL weights, so it is used only where an untiled pass needs too much memory: above this many pixels
# (an SDXL VAE decode at 1920x1080 needs a few GB in float16), or after an out-of-memory error.
VAE_UNTILED_MAX_PIXELS = 1920 * 1080
VAE_TILE_PX = 1024  # pixel tile of the tiled VAE (diffusers' default for SDXL)
VaeTiling = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda" | "mps" | "cpu"
    dtype: torch.dtype
    reason: str

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def decide_device(device_setting: str, dtype_setting: str, *, cuda: bool, mps: bool,
                  cuda_bf16: bool = True) -> tuple[str, str, str]:
    """The pure decision behind choose_device: (device, dtype name, reason) from what is available."""
    if device_setting == "cuda" and not cuda:
        raise ModelError("models.device is 'cuda' but no CUDA device is available",
                         hint="set models.device: auto (or cpu); check nvidia-smi and that the installed "
                              "torch build has CUDA support")
    if device_setting == "mps" and not mps:
        raise ModelError("models.device is 'mps' but Apple MPS is not available",
                         hint="set models.device: auto (or cpu)")
    if device_setting == "auto":
        device = "cuda" if cuda else "mps" if mps else "cpu"
        found = {"cuda": "CUDA is available", "mps": "MPS is available",
                 "cpu": "no CUDA or MPS device"}[device]
        reason = f"models.device auto: {found}"
    else:
        device, reason = device_setting, f"models.device {device_setting}"
    if dtype_setting == "auto":
        dtype = "float32" if device == "cpu" else "float16"
        reason += f"; models.dtype auto: {dtype} on {device}"
    else:
        dtype = dtype_setting
        reason += f"; models.dtype {dtype}"
    if device == "cpu" and dtype == "float16":
        raise ModelError("models.dtype float16 is not usable on the CPU",
                         hint="set models.dtype: auto or float32 (CPU float16 is unsupported or extremely "
                              "slow for SDXL); bfloat16 works on recent CPUs")
    if device == "cuda" and dtype == "bfloat16" and not cuda_bf16:
        raise ModelError("models.dtype bfloat16 is not supported by this GPU",
                         hint="set models.dtype: auto (float16)")
    return device, dtype, reason


def choose_device(device_setting: str = "auto", dtype_setting: str = "auto") -> DeviceChoice:
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    cuda_bf16 = cuda and torch.cuda.is_bf16_supported()
    device, dtype, reason = decide_device(device_setting, dtype_setting, cuda=cuda, mps=mps,
                                          cuda_bf16=cuda_bf16)
    if device == "cuda":
        reason += f" ({torch.cuda.get_device_name(0)})"
    return DeviceChoice(device=device, dtype=getattr(torch, dtype), reason=reason)


def apply_memory_options(pipe: Any, memory: MemoryOptions, choice: DeviceChoice) -> list[str]:
    """Move the pipeline to its device and apply models.memory; returns what was applied."""
    import torch

    applied: list[str] = []
    pipe.set_progress_bar_config(disable=True)
    if memory.cpu_offload != "none" and choice.device == "cuda":
        if memory.cpu_offload == "model":
            pipe.enable_model_cpu_offload()
        else:
            pipe.enable_sequential_cpu_offload()
        applied.append(f"cpu_offload={memory.cpu_offload}")
    else:
        if memory.cpu_offload != "none":
            logger.warning("models.memory.cpu_offload is ignored: it needs CUDA", device=choice.device,
                           cpu_offload=memory.cpu_offload)
        pipe.to(choice.device)
    if vae_tiling_mode(memory.vae_tiling) == "always":
        pipe.vae.enable_tiling()
        applied.append("vae_tiling")
    else:  # never, or auto: each decode/encode decides by its size (wants_vae_tiling)
        pipe.vae.disable_tiling()
    if memory.attention_slicing:
        pipe.enable_attention_slicing()
        applied.append("attention_slicing")
    if memory.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        applied.append("channels_last")
    if memory.torch_compile:
        if choice.device == "cuda":
            # In-place Module.compile keeps pipe.unet a UNet (LoRA loading, .config still work);
            # compilation happens on the first call, so load LoRAs before the first run.
            pipe.unet.compile()
            applied.append("torch_compile")
        else:
            logger.warning("models.memory.torch_compile is ignored: it is only used on CUDA",
                           device=choice.device)
    return applied


def vae_tiling_mode(setting: VaeTiling | bool) -> VaeTiling:
    """models.memory.vae_tiling as a mode; true/false (settings files from before the modes) are
    always/never."""
    if isinstance(setting, bool):
        return "always" if setting else "never"
    return setting


def wants_vae_tiling(setting: VaeTiling | bool, pixels: int) -> bool:
    """Whether a VAE pass over an image of `pixels` starts tiled (auto retries tiled after an OOM)."""
    mode = vae_tiling_mode(setting)
    return mode == "always" or (mode == "auto" and pixels > VAE_UNTILED_MAX_PIXELS)


def apply_determinism(enabled: bool, choice: DeviceChoice) -> bool:
    """models.deterministic on CUDA: deterministic kernels (warn_only: an op without one warns rather
    than fails the run) and a fixed cuBLAS workspace, which must be set before cuBLAS starts. Returns
    whether it applied. CPU kernels are deterministic already; MPS offers no such switch."""
    if not enabled or choice.device != "cuda":
        return False
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    return True


def free_memory_bytes(device: torch.device) -> int:
    """Memory free for a stage's working tensors: the GPU's free memory, or the RAM available."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)
