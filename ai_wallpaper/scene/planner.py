"""Make the plan: seed, weather mood, theme, LoRA stack, final prompts and sizes - no model loaded.

Determinism: every random choice comes from its own `random.Random` seeded from the run seed and
a purpose label, so the same seed (and the same mood, history and files) gives the same plan, and
adding a LoRA to the library never changes which theme is picked.

A fixed prompt (`--prompt` or `settings.prompt`) skips theme selection. With `--theme` as well,
the theme's modifiers, negative additions and LoRA hints still apply around the fixed prompt.
Without a theme, LoRA selection still runs (no hints, theme_key/category None, the mood given):
the selector then only picks LoRAs that are not restricted to particular themes or categories.

This module must not import torch, diffusers or transformers (`ai-wallpaper plan` is instant).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ai_wallpaper.catalog.builtin import is_builtin
from ai_wallpaper.catalog.tokenizers import tokenizer_dirs_for
from ai_wallpaper.config.locations import themes_file
from ai_wallpaper.config.screens import Screen
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.themes_schema import Theme
from ai_wallpaper.config.vocabulary import LoraHints
from ai_wallpaper.core import log
from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene import lora_library, lora_selector, prompts
from ai_wallpaper.scene.mood import build_mood
from ai_wallpaper.scene.plan import LoraChoice, Plan, Size, ThemeRef
from ai_wallpaper.scene.screen_fit import fit_base_size, screen_warnings
from ai_wallpaper.scene.themes import fill_template, load_themes, select_theme
from ai_wallpaper.scene.weather import WeatherResult, get_weather, resolve_location_cached

logger = log.get(__name__)
# A drawn seed stays below 2**32 so it is short to read and type; any seed up to
# config/vocabulary.py SEED_MAX is accepted from the user.
RANDOM_SEEDS = 2**32


@dataclass(frozen=True)
class PlanRequest:
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    theme: str | None = None
    now: datetime | None = None
    use_weather: bool = True
    # The monitors to cut wallpapers for (commands/context.py detects them); () = one final image.
    screens: tuple[Screen, ...] = ()
    base_size_fixed: bool = False  # the user set pipeline.txt2img.width/height: it wins over the monitors


def recent_themes(paths: Paths, n: int) -> tuple[list[str], str | None]:
    """Theme keys of the last n runs; an absent history DB is empty history (and is not created)."""
    if n <= 0 or not paths.history_db.exists():
        return [], None
    try:
        return list(History(paths.history_db).recent_themes(n)), None
    except Exception as exc:  # a broken history must not stop a run; say so in the plan
        return [], f"history unreadable ({exc!r}); recent themes not avoided"


def rng_for(seed: int, purpose: str) -> random.Random:
    # String seeds hash with SHA-512 in Python 3: stable across runs and PYTHONHASHSEED.
    return random.Random(f"ai-wallpaper:{seed}:{purpose}")


def make_plan(paths: Paths, settings: Settings, request: PlanRequest, *, settings_path: Path | None = None) -> Plan:
    """The whole plan. settings_path: the file `settings` came from (relative paths in it are
    relative to its folder); None = the default settings file."""
    settings_path = settings_path or paths.settings_file
    warnings: list[str] = []
    seed = request.seed if request.seed is not None else settings.seed
    if seed is None:
        seed = secrets.randbelow(RANDOM_SEEDS)
    now = request.now or datetime.now(UTC).astimezone()

    # 1. weather and mood (never fails; --no-weather reads caches only for the location)
    weather = _weather(settings, paths, now, request.use_weather)
    warnings.extend(weather.warnings)
    loc = weather.location
    mood = build_mood(now, latitude=loc.latitude if loc else None, longitude=loc.longitude if loc else None,
                      place=loc.name if loc else None, weather=weather.report, source=weather.status)

    # 2. theme (skipped for a fixed prompt unless --theme names one)
    fixed_prompt = request.prompt if request.prompt is not None else settings.prompt
    theme_ref: ThemeRef | None = None
    theme: Theme | None = None
    base_prompt = fixed_prompt or ""
    if fixed_prompt is None or request.theme is not None:
        library = load_themes(themes_file(paths, settings, settings_path))
        recent: list[str] = []
        if request.theme is None:
            recent, problem = recent_themes(paths, settings.themes.avoid_recent)
            if problem:
                warnings.append(problem)
        choice = select_theme(library, rng_for(seed, "theme"), mood=mood, recent=recent, forced=request.theme)
        theme = choice.theme
        theme_ref = choice.ref()
        if fixed_prompt is None:
            base_prompt = fill_template(theme, rng_for(seed, "prompt"), mood)
        else:
            theme_ref = ThemeRef(choice.key, theme.name, theme.category, "forced with --theme; fixed prompt")

    # 3. LoRA stack
    hints = theme.lora_hints.to_hints() if theme else LoraHints()
    stack = _lora_stack(paths, settings, settings_path, hints, theme_ref, mood, seed)

    # 4. final prompts
    negative = request.negative_prompt if request.negative_prompt is not None \
        else settings.pipeline.txt2img.negative_prompt
    prompt, refiner_prompt, negative, token_counts = _rewrite(
        paths, settings, base_prompt, negative, stack,
        prepend=theme.prompt_modifiers.prepend if theme else [],
        append=theme.prompt_modifiers.append if theme else [],
        negative_append=theme.negative if theme else [], warnings=warnings)

    # 5. sizes: the base covers every monitor well unless the user fixed it
    t2i = settings.pipeline.txt2img
    factor = settings.output.upscale_factor
    fit = fit_base_size(request.screens, Size(t2i.width, t2i.height), fixed=request.base_size_fixed)
    warnings.extend(screen_warnings(request.screens, fit, factor))
    base = fit.base
    first = request.screens[0] if request.screens else None  # the monitor that stands for the run
    final = Size(first.width, first.height) if first else Size(settings.output.width, settings.output.height)
    return Plan(
        prompt=prompt,
        refiner_prompt=refiner_prompt,
        negative_prompt=negative,
        seed=int(seed),
        base_size=base,
        upscaled_size=Size(base.width * factor, base.height * factor),
        final_size=final,
        screens=request.screens,
        models={"base": settings.models.base, "refiner": settings.models.refiner,
                "upscaler": settings.models.upscaler},
        settings_fingerprint=settings.fingerprint(),
        theme=theme_ref,
        mood=mood,
        weather_status=weather.status,
        loras=tuple(stack),
        token_counts=token_counts,
        warnings=tuple(dict.fromkeys(warnings)),
        self_test=is_builtin(settings.models.base),
    )


def _weather(settings: Settings, paths: Paths, now: datetime, use_weather: bool) -> WeatherResult:
    if not settings.weather.enabled:
        return get_weather(settings.weather, paths.weather_cache_dir, now=now)
    if not use_weather:
        # --no-weather: no network and no report, but a known location still gives sun-based time of day.
        location = resolve_location_cached(settings.weather, paths.weather_cache_dir)
        return WeatherResult("disabled", None, location)
    return get_weather(settings.weather, paths.weather_cache_dir, now=now)


def _lora_stack(paths: Paths, settings: Settings, settings_path: Path, hints: LoraHints, theme: ThemeRef | None,
                mood: dict[str, Any], seed: int) -> list[LoraChoice]:
    if not settings.loras.enabled:
        return []
    library = lora_library.load_library(paths, settings, settings_path)
    stack = lora_selector.select_stack(library, hints, theme_key=theme.key if theme else None,
                                       category=theme.category if theme else None, mood=mood,
                                       rng=rng_for(seed, "loras"))
    return list(stack)


def _rewrite(paths: Paths, settings: Settings, prompt: str, negative: str, stack: Sequence[LoraChoice], *,
             prepend: Sequence[str], append: Sequence[str], negative_append: Sequence[str],
             warnings: list[str]) -> tuple[str, str, str, dict[str, int]]:
    result = prompts.rewrite_prompt(
        prompt, negative, stack, prepend=prepend, append=append, negative_append=negative_append,
        tokenizer_dirs=tokenizer_dirs_for(settings.models.base, settings.models, paths))
    warnings.extend(result.warnings)
    return result.prompt, result.refiner_prompt, result.negative_prompt, dict(result.token_counts)
