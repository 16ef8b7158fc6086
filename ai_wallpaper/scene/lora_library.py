"""The LoRA library (loras.yaml): its schema and loading.

Is loras.yaml well formed? `load_library` validates it with the schema engine and reports every
problem at once. It does NOT require the LoRA files to exist, so the shipped library can list
downloadable examples (disabled) and a missing file never breaks every run. Whether a file is a
usable SDXL LoRA is the separate question `lora_files.check_file` answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from ai_wallpaper.config.locations import lora_dir, lora_library_file, resolve_under
from ai_wallpaper.config.schema import KeyPath, Problem, Source, build, dotted, option
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.yaml_loading import load_yaml
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene.lora_files import FileStatus, check_file

logger = log.get(__name__)

Check = list[tuple[KeyPath, str] | tuple[KeyPath, str, str]]
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
WEIGHT_LIMIT = 3.0  # |weight| above this burns any SDXL image; almost certainly a typo


# --- loras.yaml schema ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraEntry:
    file: str = option(doc="The .safetensors file: a name inside the LoRA folder, or an absolute path.")
    type: str = option("style", "What it changes: style, detail, character, concept, lighting,\n"
                                "composition... stacking_rules.type_limits counts LoRAs per type.")
    weight_range: list[float] = option(
        factory=lambda: [0.6, 0.9], doc="[low, high]: the weight is drawn uniformly in this range (seeded).")
    trigger_words: list[str] = option(
        factory=list, doc="Words the LoRA was trained on; inserted once into the prompt.")
    compatible_themes: list[str] = option(factory=list, doc="Theme keys this LoRA suits; empty = any theme.")
    compatible_categories: list[str] = option(factory=list, doc="Theme categories it suits; empty = any.")
    moods: list[str] = option(
        factory=list, doc="Mood words it has an affinity for (night, rain, winter, golden_hour...). If set,\n"
                          "it is only picked at random when one of them matches the mood.")
    chance: float = option(0.5, "Probability it is added when eligible and not required/preferred.",
                           min=0.0, max=1.0)
    base: Literal["sdxl"] = option("sdxl", "Base model family; only SDXL LoRAs are supported.")
    enabled: bool = option(True, "false keeps the entry listed but never used (e.g. not downloaded yet).")
    description: str = option("", "Free text shown by `ai-wallpaper loras list`.")
    url: str | None = option(None, "Where to download it (documentation only; nothing is downloaded).")

    def check(self) -> Check:
        problems: Check = []
        if len(self.weight_range) != 2:
            problems.append((("weight_range",), f"needs [low, high], got {len(self.weight_range)} numbers",
                             "e.g. weight_range: [0.5, 0.8]"))
        else:
            lo, hi = self.weight_range
            if lo > hi:
                problems.append((("weight_range",), f"low {lo} is above high {hi}", f"write [{hi}, {lo}]"))
            if max(abs(lo), abs(hi)) > WEIGHT_LIMIT:
                problems.append((("weight_range",),
                                 f"weights must lie within ±{WEIGHT_LIMIT}, got {self.weight_range}"))
        if not self.file.strip():
            problems.append((("file",), "is empty", "name the .safetensors file"))
        elif not self.file.endswith(".safetensors"):
            problems.append((("file",), f"must be a .safetensors file, got {self.file!r}",
                             "convert .ckpt/.pt LoRAs to safetensors; pickled files are not loaded"))
        if not KEY_RE.match(self.type):
            problems.append((("type",), f"must be one word (letters, digits, _ . -), got {self.type!r}"))
        for i, word in enumerate(self.trigger_words):
            if not word.strip():
                problems.append((("trigger_words", i), "is empty"))
        return problems


@dataclass(frozen=True)
class StackingRules:
    max_loras: int = option(3, "At most this many LoRAs in one stack.", min=0, max=8)
    type_limits: dict[str, int] = option(
        factory=dict, doc="At most N LoRAs of a type; types not listed are limited only by max_loras.",
        example={"style": 1, "detail": 1, "lighting": 1})
    weight_sum_max: float = option(2.0, "Upper bound on the sum of |weight| over the stack.",
                                   min=0.0, max=24.0)

    def check(self) -> Check:
        return [(("type_limits", name), f"must be >= 0, got {n}")
                for name, n in self.type_limits.items() if n < 0]


@dataclass(frozen=True)
class LoraLibraryFile:
    stacking_rules: StackingRules = option(factory=StackingRules, doc="How LoRAs may be combined.")
    loras: dict[str, LoraEntry] = option(factory=dict, doc="Your LoRAs, by key (themes refer to these keys).")


# --- the loaded library --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraSpec:
    """One library entry with its file resolved to an absolute path."""

    key: str
    path: Path
    type: str
    weight_range: tuple[float, float]
    trigger_words: tuple[str, ...] = ()
    compatible_themes: tuple[str, ...] = ()
    compatible_categories: tuple[str, ...] = ()
    moods: tuple[str, ...] = ()
    chance: float = 0.5
    enabled: bool = True
    description: str = ""
    url: str | None = None
    where: str = ""  # "loras.yaml:12" for messages


@dataclass(frozen=True)
class LoraLibrary:
    file: Path
    directory: Path
    rules: StackingRules
    loras: Mapping[str, LoraSpec] = field(default_factory=lambda: MappingProxyType({}))
    enabled: bool = True  # settings.loras.enabled
    cache_dir: Path | None = None  # where the file hashes are cached

    def status(self, key: str) -> FileStatus:
        return check_file(self.loras[key].path, cache_dir=self.cache_dir)


def load_library(paths: Paths, settings: Settings, settings_path: Path) -> LoraLibrary:
    """Validate loras.yaml (all problems at once) and resolve files; files need not exist."""
    file = lora_library_file(paths, settings, settings_path)
    directory = lora_dir(paths, settings, settings_path)
    if not file.exists() and not settings.loras.file:
        logger.info("no loras.yaml found; the LoRA library is empty", looked_at=str(file))
        return LoraLibrary(file, directory, StackingRules(), enabled=settings.loras.enabled,
                           cache_dir=paths.cache_dir)
    data, source = load_yaml(file)
    parsed, problems = build(LoraLibraryFile, data, source)
    problems = _key_problems(data, source) + problems
    specs: dict[str, LoraSpec] = {}
    if parsed is not None:
        seen: dict[Path, str] = {}
        for key, entry in parsed.loras.items():
            path = resolve_under(entry.file, directory).resolve()
            where_path: KeyPath = ("loras", key, "file")
            if path in seen:
                problems.append(Problem(source.file, source.line_of(where_path), dotted(where_path),
                                        f"same file as LoRA {seen[path]!r}: {path}", "list each file once"))
            seen[path] = key
            lo, hi = entry.weight_range
            specs[key] = LoraSpec(
                key=key, path=path, type=entry.type, weight_range=(float(lo), float(hi)),
                trigger_words=tuple(w.strip() for w in entry.trigger_words),
                compatible_themes=tuple(entry.compatible_themes),
                compatible_categories=tuple(entry.compatible_categories),
                moods=tuple(mood_word(m) for m in entry.moods), chance=entry.chance, enabled=entry.enabled,
                description=entry.description, url=entry.url,
                where=f"{file.name}:{source.line_of(('loras', key)) or '?'}",
            )
    if problems:
        raise ConfigError([str(p) for p in problems], hint=f"fix the keys above in {file}")
    assert parsed is not None
    return LoraLibrary(file=file, directory=directory, rules=parsed.stacking_rules,
                       loras=MappingProxyType(specs), enabled=settings.loras.enabled,
                       cache_dir=paths.cache_dir)


def _key_problems(data: Any, source: Source) -> list[Problem]:
    """LoRA keys must be plain names (duplicate keys are found for every file by yaml_loading)."""
    table = data.get("loras") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        return []
    problems: list[Problem] = []
    for key in table:
        if not KEY_RE.match(str(key)):
            path: KeyPath = ("loras", str(key))
            problems.append(Problem(source.file, source.line_of(path), dotted(path),
                                    f"key {key!r} must be letters, digits, _ . - (no spaces)",
                                    "themes' lora_hints refer to LoRAs by this key"))
    return problems


def mood_word(word: str) -> str:
    """Mood words compare case- and separator-insensitively: 'Golden Hour' == 'golden_hour'."""
    return re.sub(r"[\s-]+", "_", word.strip().lower())


def sanitize(name: str) -> str:
    """A LoRA key as a safe adapter/file-name fragment."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "lora"


# FileStatus and check_file belong to lora_files; render/lora_apply.py still imports check_file from here.
__all__ = ["FileStatus", "LoraLibrary", "LoraSpec", "StackingRules", "check_file", "load_library"]
