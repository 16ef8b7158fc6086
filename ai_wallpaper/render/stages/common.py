"""What every stage shares: config validation, progress and cancel callbacks, PIL <-> tensor helpers."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ai_wallpaper.config.vocabulary import seed_problem
from ai_wallpaper.core.errors import Cancelled

if TYPE_CHECKING:
    import torch
    from PIL import Image


class StageConfig:
    """Base of every stage config: validated on construction, every problem reported at once.

    A config is normally built from settings that the schema has already checked; validating again
    catches configs built by hand (tests, bench) with the same rules and the same key paths.
    """

    def problems(self) -> list[str]:
        """Every problem, each prefixed by the settings key path it comes from."""
        raise NotImplementedError

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise one ValueError listing every problem (never just the first)."""
        problems = self.problems()
        if problems:
            name = type(self).__name__
            raise ValueError(f"invalid {name}:\n  - " + "\n  - ".join(problems))


def bound_problems(section: type, path: str, values: dict[str, Any]) -> list[str]:
    """`values` (settings key -> value) checked against the type, min, max and multiple_of that the
    settings schema declares for those keys of `section`, so the stages never restate a bound."""
    fields = {f.name: f for f in dataclasses.fields(section)}
    hints = typing.get_type_hints(section)
    problems: list[str] = []
    for key, value in values.items():
        meta = fields[key].metadata
        lo, hi, multiple = meta.get("min"), meta.get("max"), meta.get("multiple_of")
        whole = hints[key] is int or int in typing.get_args(hints[key])
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            problems.append(f"{path}.{key}: must be {'an integer' if whole else 'a number'}, got {value!r}")
        elif not math.isfinite(value):
            problems.append(f"{path}.{key}: must be a finite number, got {value!r}")
        elif lo is not None and not lo <= value:
            problems.append(f"{path}.{key}: must be >= {lo}, got {value!r}")
        elif hi is not None and not value <= hi:
            problems.append(f"{path}.{key}: must be <= {hi}, got {value!r}")
        elif multiple and value % multiple:
            lower = value - value % multiple
            problems.append(f"{path}.{key}: must be a multiple of {multiple}, got {value!r}; "
                            f"use {max(lower, multiple)} or {lower + multiple}")
    return problems


def choice_problems(path: str, value: object, choices: Iterable[str]) -> list[str]:
    options = tuple(choices)
    return [] if value in options else [f"{path}: must be one of {', '.join(options)}, got {value!r}"]


def prompt_problems(prompt: object, negative_prompt: object, seed: object) -> list[str]:
    """What the plan hands every diffusion stage: two texts and a seed."""
    problems = [f"{key}: must be a string, got {type(text).__name__}"
                for key, text in (("prompt", prompt), ("pipeline.txt2img.negative_prompt", negative_prompt))
                if not isinstance(text, str)]
    problem = seed_problem(seed)
    return [*problems, f"seed: {problem}"] if problem else problems


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
