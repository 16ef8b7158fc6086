"""The plan: everything a run will do, computed without loading any model.

Data flows one way: settings -> Plan -> stages -> outputs. A Plan is frozen and JSON-able; it is
what `ai-wallpaper plan` prints and what `run.json` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ai_wallpaper.config.sample import to_plain
from ai_wallpaper.config.screens import Screen

WeatherStatus = Literal["live", "stale", "absent", "disabled"]


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class ThemeRef:
    key: str
    name: str
    category: str
    reason: str = ""


@dataclass(frozen=True)
class LoraChoice:
    name: str
    file: str  # absolute path of the .safetensors file
    sha256: str
    type: str
    weight: float
    trigger_words: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    prompt: str
    negative_prompt: str
    seed: int
    base_size: Size
    upscaled_size: Size
    final_size: Size
    models: dict[str, str | None]  # role -> spec (base, refiner, upscaler)
    settings_fingerprint: str
    theme: ThemeRef | None = None
    mood: dict[str, Any] | None = None
    weather_status: WeatherStatus = "disabled"
    loras: tuple[LoraChoice, ...] = ()
    token_counts: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    self_test: bool = False  # built-in random-weight model: images are not meaningful
    # The refiner's prompt: `prompt` without the LoRA trigger words, since SDXL LoRAs do not fit the
    # refiner and a trigger word without its LoRA only adds noise. "" = the same as `prompt`.
    refiner_prompt: str = ""
    # The monitors the final stage cuts a wallpaper for, each at its own size; () = one final image of
    # final_size (no monitor known, or desktop.layout: single).
    screens: tuple[Screen, ...] = ()

    def to_json(self) -> dict[str, Any]:
        plain: dict[str, Any] = to_plain(self)
        return plain

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(
            prompt=data["prompt"],
            negative_prompt=data["negative_prompt"],
            seed=int(data["seed"]),
            base_size=Size(**data["base_size"]),
            upscaled_size=Size(**data["upscaled_size"]),
            final_size=Size(**data["final_size"]),
            models=dict(data["models"]),
            settings_fingerprint=data["settings_fingerprint"],
            theme=ThemeRef(**data["theme"]) if data.get("theme") else None,
            mood=data.get("mood"),
            weather_status=data.get("weather_status", "disabled"),
            loras=tuple(LoraChoice(**{**c, "trigger_words": tuple(c.get("trigger_words", ()))})
                        for c in data.get("loras", ())),
            token_counts=dict(data.get("token_counts", {})),
            warnings=tuple(data.get("warnings", ())),
            self_test=bool(data.get("self_test", False)),
            refiner_prompt=str(data.get("refiner_prompt") or ""),
            screens=tuple(Screen(**s) for s in data.get("screens", ())),
        )
