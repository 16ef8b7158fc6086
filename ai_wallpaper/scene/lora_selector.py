"""LoRASelector: library + theme hints + mood + stacking rules -> an immutable, validated stack.

Rules, in order:
1. `settings.loras.enabled: false` -> empty stack (the user switched LoRAs off; required hints too).
2. Required LoRAs are always in. If one is unknown, disabled, excluded, incompatible with the theme,
   has a bad file, or the required set alone breaks max_loras / type_limits / weight_sum_max, that
   is a ConfigError naming the theme, the LoRA and the rule. Nothing is silently dropped.
3. Excluded LoRAs are never used.
4. Preferred LoRAs are tried next, in the theme's order; then the rest, mood matches first, each
   with its own `chance`. A LoRA with `moods:` is picked at random only when a mood word matches.
5. Optional LoRAs are skipped (with a log line) when their file fails `check_file`, their file
   duplicates one already in the stack, or max_loras / type_limits would be exceeded.
6. Weights are drawn uniformly in each `weight_range` (rounded to 0.01) from the seeded rng. The
   sum of |weight| must stay <= weight_sum_max: required weights are scaled down together toward
   the low end of their ranges; an optional LoRA that does not fit is scaled down to the budget
   that is left if that stays inside its range (and >= 0.05), otherwise skipped.
Every rng draw happens in a fixed order whatever the files' state, so the same seed and library
give the same stack.

Compatibility: a LoRA with neither compatible_themes nor compatible_categories suits every theme;
otherwise the theme key must be in the first list or its category in the second.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from ai_wallpaper.config.vocabulary import LoraHints
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.scene.lora_files import FileStatus
from ai_wallpaper.scene.lora_library import LoraLibrary, LoraSpec, mood_word
from ai_wallpaper.scene.plan import LoraChoice

logger = log.get(__name__)
MIN_USEFUL_WEIGHT = 0.05


def requirement_problems(library: LoraLibrary, hints: LoraHints, *, theme_key: str | None,
                         category: str | None) -> list[str]:
    """Why a theme's required LoRAs cannot be used (what select_stack would refuse), or []."""
    if not library.enabled or not hints.required:
        return []
    builder = _StackBuilder(library, repr(theme_key) if theme_key else "(fixed prompt)")
    try:
        builder.check_required(list(dict.fromkeys(hints.required)), hints, theme_key, category)
    except ConfigError as exc:
        return exc.problems
    return []


def select_stack(library: LoraLibrary, hints: LoraHints, *, theme_key: str | None, category: str | None,
                 mood: dict[str, Any] | None, rng: random.Random) -> tuple[LoraChoice, ...]:
    if not library.enabled:
        if hints.required:
            logger.info("LoRAs are disabled in settings; ignoring required LoRAs",
                        required=list(hints.required))
        return ()
    label = repr(theme_key) if theme_key else "(fixed prompt)"
    for kind, names in (("preferred", hints.preferred), ("excluded", hints.excluded)):
        for name in names:
            if name not in library.loras:
                logger.warning("theme names a LoRA that is not in the library", theme=theme_key, hint=kind,
                               lora=name, library=str(library.file))
    builder = _StackBuilder(library, label)
    required = list(dict.fromkeys(hints.required))
    statuses = builder.check_required(required, hints, theme_key, category)
    weights = [_draw_weight(library.loras[name], rng) for name in required]
    weights = builder.fit_required(required, weights)
    for name, weight in zip(required, weights, strict=True):
        builder.add(library.loras[name], statuses[name], weight, f"required by theme {label}")

    excluded = set(hints.excluded)
    preferred = [n for n in dict.fromkeys(hints.preferred) if n in library.loras and n not in excluded]
    words = mood_words(mood)
    others = [k for k in library.loras if k not in excluded and k not in preferred]
    rng.shuffle(others)
    matches = {k: sorted(set(library.loras[k].moods) & words) for k in others}
    others.sort(key=lambda k: -len(matches[k]))  # stable: mood matches first, shuffled within
    # Draw for every candidate up front, in a fixed order, so file problems don't shift the rng.
    draws = {k: (rng.random(), _draw_weight(library.loras[k], rng)) for k in [*preferred, *others]}

    for name in [*preferred, *others]:
        spec = library.loras[name]
        roll, weight = draws[name]
        if name in builder.names or not spec.enabled or not is_compatible(spec, theme_key, category):
            continue
        if name in preferred:
            reason = f"preferred by theme {label}"
        elif (spec.moods and not matches[name]) or roll >= spec.chance:
            continue
        else:
            why = f"mood match: {', '.join(matches[name])}" if matches[name] else "random pick"
            reason = f"{why} (roll {roll:.2f} < chance {spec.chance})"
        builder.try_optional(spec, weight, reason)
    stack = tuple(builder.choices)
    logger.info("LoRA stack selected", theme=theme_key,
                loras=[f"{c.name}@{c.weight}" for c in stack] or "none")
    return stack


def is_compatible(spec: LoraSpec, theme_key: str | None, category: str | None) -> bool:
    if not spec.compatible_themes and not spec.compatible_categories:
        return True
    return (theme_key is not None and theme_key in spec.compatible_themes) or (
        category is not None and category in spec.compatible_categories)


def mood_words(mood: dict[str, Any] | None) -> set[str]:
    """Every string in the mood (values, nested values, and keys whose value is True), normalised."""
    words: set[str] = set()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, str):
            words.add(mood_word(value))
        elif value is True and key:
            words.add(mood_word(key))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, key)

    walk(mood or {}, None)
    return words


def _draw_weight(spec: LoraSpec, rng: random.Random) -> float:
    lo, hi = spec.weight_range
    return round(rng.uniform(lo, hi), 2)


def _floor(spec: LoraSpec) -> float:
    """The weight in range with the smallest magnitude: what scaling moves toward."""
    lo, hi = spec.weight_range
    return 0.0 if lo <= 0.0 <= hi else (lo if lo > 0 else hi)


def _trunc(x: float) -> float:
    """Round toward zero at 4 decimals, so a scaled weight never overshoots the budget."""
    return math.copysign(math.floor(abs(x) * 1e4) / 1e4, x)


class _StackBuilder:
    def __init__(self, library: LoraLibrary, label: str) -> None:
        self.library = library
        self.rules = library.rules
        self.label = label
        self.choices: list[LoraChoice] = []
        self.types: Counter[str] = Counter()
        self.hashes: dict[str, str] = {}

    @property
    def names(self) -> set[str]:
        return {c.name for c in self.choices}

    @property
    def total(self) -> float:
        return sum(abs(c.weight) for c in self.choices)

    def check_required(self, required: list[str], hints: LoraHints, theme_key: str | None,
                       category: str | None) -> dict[str, FileStatus]:
        problems: list[str] = []
        statuses: dict[str, FileStatus] = {}

        def fail(name: str, rule: str, message: str) -> None:
            problems.append(f"theme {self.label} requires LoRA {name!r}: {message} (rule: {rule})")

        for name in required:
            spec = self.library.loras.get(name)
            if spec is None:
                fail(name, "lora_hints.required", f"there is no such LoRA in {self.library.file}")
                continue
            if name in hints.excluded:
                fail(name, "lora_hints.excluded", "the theme also excludes it")
            if not spec.enabled:
                fail(name, "enabled", f"it is disabled ({spec.where})")
            if not is_compatible(spec, theme_key, category):
                fail(name, "compatible_themes/compatible_categories",
                     f"it does not list this theme or its category ({spec.where})")
            status = self.library.status(name)
            statuses[name] = status
            if not status.ok:
                fail(name, f"file ({status.kind})", status.message)
            elif status.sha256 in self.hashes:
                fail(name, "duplicates", f"same file content as LoRA {self.hashes[status.sha256]!r}")
            else:
                self.hashes[status.sha256] = name
        known = [self.library.loras[n] for n in required if n in self.library.loras]
        if len(known) > self.rules.max_loras:
            problems.append(f"theme {self.label} requires {len(known)} LoRAs ({', '.join(required)}) but "
                            f"stacking_rules.max_loras is {self.rules.max_loras} (rule: max_loras)")
        for kind, n in Counter(s.type for s in known).items():
            limit = self.rules.type_limits.get(kind)
            if limit is not None and n > limit:
                names = ", ".join(s.key for s in known if s.type == kind)
                problems.append(f"theme {self.label} requires {n} LoRAs of type {kind!r} ({names}) but "
                                f"stacking_rules.type_limits.{kind} is {limit} (rule: type_limits)")
        least = sum(abs(_floor(s)) for s in known)
        if least > self.rules.weight_sum_max + 1e-9:
            problems.append(f"theme {self.label} requires LoRAs ({', '.join(required)}) whose lowest weights "
                            f"already sum to {least:g} > stacking_rules.weight_sum_max "
                            f"{self.rules.weight_sum_max:g} (rule: weight_sum_max)")
        if problems:
            raise ConfigError(problems, hint=f"fix the theme's lora_hints or {self.library.file}")
        self.hashes.clear()
        return statuses

    def fit_required(self, required: list[str], weights: list[float]) -> list[float]:
        budget = self.rules.weight_sum_max
        total = sum(abs(w) for w in weights)
        if total <= budget + 1e-9:
            return weights
        floors = [_floor(self.library.loras[n]) for n in required]
        # |floor + f*(w - floor)| is linear in f because floor and w share a sign (or floor is 0).
        spare = sum(abs(w - fl) for w, fl in zip(weights, floors, strict=True))
        f = (budget - sum(abs(fl) for fl in floors)) / spare if spare else 0.0
        scaled = [_trunc(fl + f * (w - fl)) for w, fl in zip(weights, floors, strict=True)]
        logger.info("required LoRA weights scaled down to weight_sum_max", before=weights, after=scaled,
                    weight_sum_max=budget)
        return scaled

    def add(self, spec: LoraSpec, status: FileStatus, weight: float, reason: str) -> None:
        self.choices.append(LoraChoice(name=spec.key, file=str(spec.path), sha256=status.sha256,
                                       type=spec.type, weight=weight, trigger_words=spec.trigger_words,
                                       reason=reason))
        self.types[spec.type] += 1
        self.hashes[status.sha256] = spec.key

    def try_optional(self, spec: LoraSpec, weight: float, reason: str) -> None:
        def skip(why: str, level: str = "info") -> None:
            getattr(logger, level)("optional LoRA skipped", lora=spec.key, reason=why)

        if len(self.choices) >= self.rules.max_loras:
            return skip(f"max_loras {self.rules.max_loras} reached")
        limit = self.rules.type_limits.get(spec.type)
        if limit is not None and self.types[spec.type] >= limit:
            return skip(f"type_limits.{spec.type} {limit} reached")
        status = self.library.status(spec.key)
        if not status.ok:
            return skip(f"{status.kind}: {status.message}", "warning")
        if status.sha256 in self.hashes:
            return skip(f"same file as LoRA {self.hashes[status.sha256]!r}", "warning")
        left = self.rules.weight_sum_max - self.total
        if abs(weight) > left + 1e-9:
            if left < max(abs(_floor(spec)), MIN_USEFUL_WEIGHT):
                return skip(f"weight_sum_max {self.rules.weight_sum_max:g}: only {max(left, 0):.2f} left")
            scaled = _trunc(math.copysign(left, weight if weight else 1.0))
            reason += f"; weight scaled from {weight} to {scaled} to keep weight_sum_max"
            weight = scaled
        self.add(spec, status, weight, reason)
        return None


def describe(stack: Iterable[LoraChoice]) -> list[str]:
    """One line per LoRA, for `plan` output and logs."""
    return [f"{c.name} ({c.type}) @ {c.weight:g} — {c.reason}" for c in stack]
