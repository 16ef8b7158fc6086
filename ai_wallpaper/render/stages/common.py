"""What every stage shares: progress and cancel callbacks, PIL <-> tensor helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ai_wallpaper.core.errors import Cancelled

if TYPE_CHECKING:
    import torch
    from PIL import Image


class Progress(Protocol):
    def __call__(self, step: int, total: int) -> None: ...


CancelCheck = Callable[[], bool]


def no_progress(step: int, total: int) -> None:
    """Default progress sink."""


def never_cancel() -> bool:
    return False


def raise_if_cancelled(cancel: CancelCheck) -> None:
    if cancel():
        raise Cancelled("run cancelled")


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 tensor (1, 3, H, W) in [0, 1]."""
    import numpy as np
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> PIL RGB, rounded (not truncated) to uint8."""
    import numpy as np
    from PIL import Image

    t = tensor.detach().float().cpu()
    if t.ndim == 4:
        t = t[0]
    array = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array, mode="RGB")


def latent_normalisation(vae: Any, device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor | None, float]:
    """The VAE's latent normalisation: per-channel (mean, std) maps if its config defines them,
    else (None, None, shift_factor). Scaled latents are (z - mean) * scaling_factor / std, or
    (z - shift) * scaling_factor. One place, so encode and every decode agree."""
    import torch

    mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
    if mean is not None and std is not None:
        as_map = [torch.tensor(v).view(1, -1, 1, 1).to(device) for v in (mean, std)]
        return as_map[0], as_map[1], 0.0
    return None, None, float(getattr(vae.config, "shift_factor", None) or 0.0)
