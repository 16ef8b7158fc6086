"""Which base size covers every monitor well, and how each monitor's wallpaper is cut from the master.

Every monitor gets its own cover-crop of the one 8K master (render/stages/downsample.py): the part of
the master it shows is min(a/A, A/a) of it, a = the monitor's aspect, A = the master's. A 16:9 monitor
keeps 95 % of a 1920x1024 master; a portrait 9:16 one only 30 %. So when monitors are known and the
user did not set pipeline.txt2img.width/height, the planner keeps the configured base size while every
monitor keeps at least KEEP_WELL of it, and otherwise picks the base aspect that maximises the smallest
share any monitor keeps, at about the configured pixel count (SDXL's cost and quality follow the
pixel count, not the aspect).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from ai_wallpaper.config.render_settings import Txt2ImgSettings
from ai_wallpaper.config.screens import Screen
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.scene.plan import Plan, Size

KEEP_WELL = 0.9  # a monitor that sees 90 % of the master loses only a thin strip
SIZE_STEP = 64  # SDXL latents are 1/8, and its UNet halves them three times
BASE_MIN_SIDE = 512  # below 512 SDXL falls apart
# The largest base side the settings allow (pipeline.txt2img.width/height), read from the schema.
BASE_MAX_SIDE: int = next(f for f in fields(Txt2ImgSettings) if f.name == "width").metadata["max"]
MAX_ASPECT = 2.5  # wider than this (or taller than 1/2.5) SDXL repeats its subject


@dataclass(frozen=True)
class Fit:
    base: Size
    kept: dict[str, float]  # screen name -> share of the master it shows
    chosen: bool  # False: the configured size was kept


def kept_share(screen_w: int, screen_h: int, master_w: int, master_h: int) -> float:
    """How much of the master a cover-crop to the screen's aspect keeps (1.0 = all of it)."""
    a, m = screen_w / screen_h, master_w / master_h
    return min(a / m, m / a)


def _shares(screens: Sequence[Screen], size: Size) -> dict[str, float]:
    return {s.name: kept_share(s.width, s.height, size.width, size.height) for s in screens}


def candidate_sizes(pixels: int) -> list[Size]:
    """Base sizes in SIZE_STEP steps with about `pixels` pixels (±8 %), within the aspect limits."""
    out = []
    for w in range(BASE_MIN_SIDE, BASE_MAX_SIDE + 1, SIZE_STEP):
        for h in range(BASE_MIN_SIDE, BASE_MAX_SIDE + 1, SIZE_STEP):
            if abs(w * h - pixels) <= 0.08 * pixels and 1 / MAX_ASPECT <= w / h <= MAX_ASPECT:
                out.append(Size(w, h))
    return out


def fit_base_size(screens: Sequence[Screen], configured: Size, *, fixed: bool) -> Fit:
    """The base size for these monitors. fixed: the user set the size, which wins."""
    kept = _shares(screens, configured)
    if fixed or not screens or min(kept.values()) >= KEEP_WELL:
        return Fit(configured, kept, chosen=False)

    def score(size: Size) -> tuple[float, float, float]:
        shares = _shares(screens, size).values()
        # the worst-served monitor first, then all of them, then the closest pixel count
        return (round(min(shares), 4), round(sum(shares), 4), -abs(size.width * size.height - configured.width
                                                                    * configured.height))

    best = max(candidate_sizes(configured.width * configured.height) or [configured], key=score)
    if score(best) <= score(configured):
        return Fit(configured, kept, chosen=False)
    return Fit(best, _shares(screens, best), chosen=True)


def screen_warnings(screens: Sequence[Screen], fit: Fit, factor: int) -> list[str]:
    """What the plan should say about the monitors: one served poorly, or one bigger than the master."""
    out = []
    for screen in screens:
        share = fit.kept[screen.name]
        if share < KEEP_WELL:
            out.append(f"monitor {screen.name} ({screen.width}x{screen.height}) shows only {share:.0%} of the "
                       f"{fit.base.width}x{fit.base.height} composition"
                       + ("" if fit.chosen else "; unset pipeline.txt2img.width/height to let the planner "
                                                 "choose a base size for the monitors"))
        master_w, master_h = fit.base.width * factor, fit.base.height * factor
        if screen.width * screen.height > master_w * master_h * share:
            out.append(f"monitor {screen.name} ({screen.width}x{screen.height}) has more pixels than its cut of "
                       f"the {master_w}x{master_h} master: it is upscaled (raise output.upscale_factor)")
    return out


def settings_for_plan(settings: Settings, plan: Plan) -> Settings:
    """The settings a run renders with: the plan's base size (chosen for the monitors) in txt2img."""
    t2i = settings.pipeline.txt2img
    if (t2i.width, t2i.height) == (plan.base_size.width, plan.base_size.height):
        return settings
    sized = replace(t2i, width=plan.base_size.width, height=plan.base_size.height)
    return replace(settings, pipeline=replace(settings.pipeline, txt2img=sized))
