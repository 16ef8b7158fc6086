"""The words the config files may use, and the rules both the settings schema and the render stages
check (the seed bound, tile overlaps), written once: the settings schema, themes.yaml's checks, the
mood, the LoRA selector and the render stages all import them from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# --- the mood (themes.yaml affinities are validated against these) ------------------------------
CONDITIONS = ("clear", "cloudy", "overcast", "fog", "drizzle", "rain", "snow", "storm")
TIMES_OF_DAY = ("night", "dawn", "day", "golden_hour", "dusk")
SEASONS = ("spring", "summer", "autumn", "winter")
TEMPERATURE_BANDS = ("freezing", "cold", "mild", "warm", "hot")
WIND_BANDS = ("calm", "breezy", "windy", "gale")
# Mood words that theme templates may use as placeholders: {light}, {atmosphere}, {season}.
MOOD_PLACEHOLDERS = ("light", "atmosphere", "season")

# --- render choices ------------------------------------------------------------------------------
SchedulerName = Literal["dpmpp_2m_karras", "dpmpp_2m", "euler", "euler_a", "ddim"]
SCHEDULER_NAMES: tuple[str, ...] = get_args(SchedulerName)
Anchor = Literal["center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right"]
ANCHORS: tuple[str, ...] = get_args(Anchor)
BlendKind = Literal["gaussian", "cosine"]
BLEND_KINDS: tuple[str, ...] = get_args(BlendKind)

# A seed is stored in run.json and history and fed to torch.Generator.manual_seed, which takes
# [0, 2**64 - 1]; the bound is the signed 64-bit maximum so SQLite's INTEGER holds every seed too.
SEED_MAX = 2**63 - 1


def seed_problem(seed: object) -> str | None:
    """Why `seed` is not a seed, or None."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        return f"must be an integer from 0 to 2**63-1, got {seed!r}"
    return None


# --- tiling rules: the settings schema and the render stages both call these ------------------------
def tile_overlap_problem(tile: int, overlap: int) -> tuple[str, str] | None:
    """(problem, fix) when tiles of `tile` px overlapping by `overlap` px cannot tile an image, else None.

    Tiles start every tile - overlap px, so an overlap as large as the tile never advances.
    """
    if overlap < tile:
        return None
    return f"must be less than tile ({tile}), got {overlap}", f"use at most {tile - 8}"


def tile_fit_problem(tile: int, width: int, height: int, multiple: int = 64) -> tuple[str, str] | None:
    """(problem, fix) when a square `tile` does not fit a `width`x`height` image, else None. `multiple`:
    what a tile must be a multiple of (64 for the enhancer: 8 latent pixels of the VAE's factor 8)."""
    if tile <= min(width, height):
        return None
    fit = max(multiple, min(width, height) // multiple * multiple)
    return (f"{tile} is larger than the image ({width}x{height})",
            f"use at most {fit}, or raise the base size (pipeline.txt2img) or output.upscale_factor")


def tile_margin_problem(tile: int, margin: int) -> tuple[str, str] | None:
    """(problem, fix) when the upscaler's context margin is not less than half its tile, else None.

    Each tile is computed with `margin` px of context on every side and cropped; from half the tile
    on, a tile computes more margin than output.
    """
    if 2 * margin < tile:
        return None
    return f"must be less than half of tile ({tile}), got {margin}", "lower overlap or raise tile"


@dataclass(frozen=True)
class LoraHints:
    """A theme's say in LoRA selection (names are keys of loras.yaml's `loras:` mapping)."""

    required: tuple[str, ...] = ()
    preferred: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
