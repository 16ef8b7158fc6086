"""The themes.yaml schema: categories, themes, prompt templates, LoRA hints and weather affinities.

Built with the same schema engine as settings.yaml, so unknown keys, wrong types and every
cross-reference problem (unknown category, a template placeholder without a list, all weights
zero...) are reported together, each with file, line, key path and a hint.
"""

# option() returns a dataclasses.field, which is what RUF009 cannot see.
from __future__ import annotations

import difflib
import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ai_wallpaper.config import vocabulary as vocab
from ai_wallpaper.config.schema import KeyPath, option
from ai_wallpaper.config.vocabulary import LoraHints

Check = list[tuple[KeyPath, str] | tuple[KeyPath, str, str]]
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# Placeholder -> the theme field whose list fills it. Each occurrence draws a different item.
LIST_PLACEHOLDERS = {"element": "elements", "style": "styles", "color": "colors"}
MAX_MULTIPLIER = 100.0
MAX_UNKNOWN_PLACEHOLDERS = 10  # per template; a hostile file must not produce thousands of difflib calls
_SINGULAR = {"conditions": "condition", "time_of_day": "time of day", "seasons": "season",
             "temperature": "temperature band", "wind": "wind band"}


def unknown_category(category: str, categories: list[str]) -> tuple[str, str]:
    """(message, hint) for a theme naming a category that does not exist."""
    close = difflib.get_close_matches(category, categories, n=1)
    return (f"unknown category {category!r}",
            f"did you mean {close[0]!r}?" if close else "categories: " + ", ".join(categories))


@dataclass(frozen=True)
class Affinity:
    """Weight multipliers by mood. A missing entry means x1; 0 rules the theme out in that mood."""

    conditions: dict[str, float] = option(factory=dict, doc="Condition family -> multiplier.",
                                          example={"fog": 3.0, "clear": 0.5})
    time_of_day: dict[str, float] = option(factory=dict, doc="Time of day -> multiplier.",
                                           example={"night": 2.0})
    seasons: dict[str, float] = option(factory=dict, doc="Season -> multiplier.", example={"winter": 2.5})
    temperature: dict[str, float] = option(factory=dict, doc="Temperature band -> multiplier.")
    wind: dict[str, float] = option(factory=dict, doc="Wind band -> multiplier.")

    def check(self) -> Check:
        problems: Check = []
        tables = {"conditions": vocab.CONDITIONS, "time_of_day": vocab.TIMES_OF_DAY, "seasons": vocab.SEASONS,
                  "temperature": vocab.TEMPERATURE_BANDS, "wind": vocab.WIND_BANDS}
        for field_name, allowed in tables.items():
            for key, value in getattr(self, field_name).items():
                if key not in allowed:
                    close = difflib.get_close_matches(key, allowed, n=1)
                    hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(allowed)
                    what = _SINGULAR[field_name]
                    problems.append(((field_name, key), f"unknown {what} {key!r}", hint))
                elif not 0 <= value <= MAX_MULTIPLIER:
                    problems.append(((field_name, key),
                                     f"multiplier must be between 0 and {MAX_MULTIPLIER:g}, got {value}"))
        return problems

    def multiplier(self, mood: dict[str, Any] | None) -> tuple[float, list[str]]:
        """The product of the entries matching `mood`, and a note for each one that applied."""
        if not mood:
            return 1.0, []
        factor, notes = 1.0, []
        for field_name, mood_key in (("conditions", "condition"), ("time_of_day", "time_of_day"),
                                     ("seasons", "season"), ("temperature", "temperature_band"),
                                     ("wind", "wind")):
            value = mood.get(mood_key)
            table: dict[str, float] = getattr(self, field_name)
            if value is not None and value in table:
                factor *= table[value]
                notes.append(f"{value} x{table[value]:g}")
        return factor, notes


@dataclass(frozen=True)
class PromptModifiers:
    prepend: list[str] = option(factory=list, doc="Phrases put before the prompt.")
    append: list[str] = option(factory=list, doc="Phrases put after the prompt.")


@dataclass(frozen=True)
class LoraHintsSpec:
    required: list[str] = option(factory=list, doc="LoRA names (loras.yaml keys) that must be used.")
    preferred: list[str] = option(factory=list, doc="LoRA names picked first when they fit.")
    excluded: list[str] = option(factory=list, doc="LoRA names never used with this theme.")

    def to_hints(self) -> LoraHints:
        return LoraHints(tuple(self.required), tuple(self.preferred), tuple(self.excluded))

    def check(self) -> Check:
        problems: Check = []
        for name in set(self.required) & set(self.excluded):
            problems.append((("excluded",), f"{name!r} is both required and excluded"))
        return problems


@dataclass(frozen=True)
class Category:
    name: str = option(doc="Display name.")
    weight: float = option(1.0, "Relative chance of this category (0 disables it).", min=0)
    description: str = option("", "One line about the category.")
    weather: Affinity = option(factory=Affinity, doc="Mood multipliers for the whole category.")


@dataclass(frozen=True)
class Theme:
    name: str = option(doc="Display name.")
    category: str = option(doc="Key of a category.")
    weight: float = option(1.0, "Relative chance within its category (0 disables it).", min=0)
    templates: list[str] = option(
        factory=list,
        doc="Prompt templates; one is picked per run. Placeholders: {element}, {style}, {color} (drawn\n"
            "from the lists below, each occurrence a different item) and {light}, {atmosphere},\n"
            "{season} (from the mood).")
    elements: list[str] = option(factory=list, doc="Subjects and details for {element}.")
    styles: list[str] = option(factory=list, doc="Art styles for {style}.")
    colors: list[str] = option(factory=list, doc="Palettes for {color}.")
    negative: list[str] = option(factory=list, doc="Added to the negative prompt.")
    prompt_modifiers: PromptModifiers = option(factory=PromptModifiers, doc="Phrases around the prompt.")
    lora_hints: LoraHintsSpec = option(factory=LoraHintsSpec, doc="Say in the LoRA selection.")
    weather: Affinity = option(factory=Affinity, doc="Mood multipliers for this theme.")

    def check(self) -> Check:
        problems: Check = []
        if not self.templates:
            problems.append((("templates",), "needs at least one prompt template",
                             "e.g. templates: ['a {style} painting of {element}']"))
        allowed = (*LIST_PLACEHOLDERS, *vocab.MOOD_PLACEHOLDERS)
        for i, template in enumerate(self.templates):
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
            except ValueError as exc:
                problems.append((("templates", i), f"bad placeholder syntax: {exc}",
                                 "use {element}; write {{ for a literal {"))
                continue
            unknown = 0
            for placeholder, count in Counter(fields).items():  # Counter: linear even for huge templates
                if placeholder not in allowed:
                    unknown += 1
                    if unknown > MAX_UNKNOWN_PLACEHOLDERS:
                        continue
                    close = difflib.get_close_matches(placeholder[:64], allowed, n=1)
                    hint = f"did you mean {{{close[0]}}}?" if close else "allowed: " + ", ".join(allowed)
                    problems.append((("templates", i), f"unknown placeholder {{{placeholder[:64]}}}", hint))
                    continue
                list_name = LIST_PLACEHOLDERS.get(placeholder)
                if list_name is None:
                    continue
                items = getattr(self, list_name)
                if not items:
                    problems.append((("templates", i), f"uses {{{placeholder}}} but `{list_name}` is empty",
                                     f"add a non-empty `{list_name}:` list or remove the placeholder"))
                elif len(set(items)) < count:
                    problems.append((("templates", i),
                                     f"uses {{{placeholder}}} {count} times but `{list_name}` has only "
                                     f"{len(set(items))} distinct item(s)", f"add items to `{list_name}`"))
            if unknown > MAX_UNKNOWN_PLACEHOLDERS:
                problems.append((("templates", i), f"... and {unknown - MAX_UNKNOWN_PLACEHOLDERS} more unknown "
                                 "placeholders", "allowed: " + ", ".join(allowed)))
        for list_name in LIST_PLACEHOLDERS.values():
            for j, item in enumerate(getattr(self, list_name)):
                if not item.strip():
                    problems.append(((list_name, j), "empty item"))
        return problems


@dataclass(frozen=True)
class ThemeFile:
    version: int = option(1, "File format version.", min=1, max=1)
    categories: dict[str, Category] = option(factory=dict, doc="Category key -> category.")
    themes: dict[str, Theme] = option(factory=dict, doc="Theme key -> theme (the key is what --theme takes).")

    def check(self) -> Check:
        problems: Check = []
        if not self.categories:
            problems.append((("categories",), "needs at least one category"))
        if not self.themes:
            problems.append((("themes",), "needs at least one theme"))
        for group, table in (("categories", self.categories), ("themes", self.themes)):
            for key in table:
                if not KEY_PATTERN.match(key):
                    fixed = re.sub(r"[^a-z0-9_-]+", "_", key.lower()).strip("_") or "my_key"
                    problems.append(((group, key), f"key {key!r} must be lower-case letters, digits, _ or -",
                                     f"e.g. {fixed}"))
        per_category: dict[str, float] = {k: 0.0 for k in self.categories}
        for key, theme in self.themes.items():
            if theme.category not in self.categories:
                message, hint = unknown_category(theme.category, list(self.categories))
                problems.append((("themes", key, "category"), message, hint))
            else:
                per_category[theme.category] += theme.weight
        for key, category in self.categories.items():
            if category.weight > 0 and per_category[key] <= 0:
                problems.append((("categories", key),
                                 f"category {key!r} has weight {category.weight:g} but no theme "
                                 "with a weight above 0",
                                 "add a theme to it or set its weight to 0"))
        if self.categories and sum(
            c.weight for k, c in self.categories.items() if per_category.get(k, 0) > 0
        ) <= 0:
            problems.append((("categories",), "all category weights are 0: nothing can be picked",
                             "give at least one category with themes a weight above 0"))
        return problems
