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

from ai_wallpaper.config.backend_settings import InvokeAISettings, RenderSettings
from ai_wallpaper.config.desktop_settings import DesktopSettings
from ai_wallpaper.config.render_settings import (
    ModelSettings,
    OutputSettings,
    PipelineSettings,
)
from ai_wallpaper.config.sample import to_plain
from ai_wallpaper.config.schema import KeyPath, Source, build_or_raise, option
from ai_wallpaper.config.urls import url_problem
from ai_wallpaper.config.vocabulary import (
    SEED_MAX,
    tile_fit_problem,
)
from ai_wallpaper.config.yaml_loading import load_yaml

Check = list[tuple[KeyPath, str] | tuple[KeyPath, str, str]]


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
class SkipWhenSettings:
    on_battery: bool = option(False, "Skip while the computer runs on battery.")
    fullscreen: bool = option(False, "Skip while the focused window is fullscreen (X11, sway, Hyprland).")
    screen_locked: bool = option(False, "Skip while the screen is locked (logind, or the desktop's screensaver).")
    gpu_busy_gb: float | None = option(
        None, "Skip while other processes hold more than this many GB of GPU memory (nvidia-smi);\n"
        "null = never.", min=0)


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
    skip_when: SkipWhenSettings = option(
        factory=SkipWhenSettings,
        doc="A scheduled or catch-up run is skipped (a history row with the reason) while one of these\n"
            "holds or `ai-wallpaper pause` is in force; a check that cannot tell never skips.\n"
            "`generate` and `next` always run.")


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
    render: RenderSettings = option(factory=RenderSettings, doc="Where the stages run.")
    invokeai: InvokeAISettings = option(factory=InvokeAISettings, doc="The InvokeAI server (render.backend: invokeai).")
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
    "models": ("base", "base_config", "refiner", "refiner_config", "vae", "upscaler", "device", "dtype",
               "deterministic", "memory"),
    "pipeline": ("txt2img", "refine", "upscale", "enhance"),
    "output": ("width", "height", "anchor", "upscale_factor"),
    "render": ("backend",),
    "invokeai": ("models", "enhance_fallback"),
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
