"""Theme library: load themes.yaml, pick a theme (weighted, two-level, seedable) and fill its prompt.

Selection: first a category, then a theme inside it. A theme's weight is its base weight times
its weather affinity for the current mood (and its category's). Themes used in the last
`avoid_recent` runs are left out unless that would leave nothing. A category's chance is its
weight times the base-weighted mean affinity of its remaining themes, so weather moves the
category choice too while an affinity-free category keeps exactly its configured weight.
"""

from __future__ import annotations

import difflib
import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_wallpaper.config.schema import Problem, Source, build, dotted
from ai_wallpaper.config.themes_schema import LIST_PLACEHOLDERS, Category, Theme, ThemeFile, unknown_category
from ai_wallpaper.config.yaml_loading import load_yaml, parse_yaml
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ConfigError, UsageError
from ai_wallpaper.scene.mood import mood_phrases
from ai_wallpaper.scene.plan import ThemeRef

logger = log.get(__name__)


@dataclass(frozen=True)
class ThemeLibrary:
    file: Path
    categories: dict[str, Category]
    themes: dict[str, Theme]


@dataclass(frozen=True)
class ThemeChoice:
    key: str
    theme: Theme
    category_probability: float
    theme_probability: float
    reason: str

    def ref(self) -> ThemeRef:
        return ThemeRef(key=self.key, name=self.theme.name, category=self.theme.category, reason=self.reason)


# --- loading ----------------------------------------------------------------------------------


def check_themes_file(path: Path) -> tuple[ThemeLibrary | None, list[Problem]]:
    """Validate without raising (for `config validate`): the library or every problem found."""
    try:
        data, source = load_yaml(path)
    except ConfigError as exc:
        return None, [Problem(str(path), None, "", p) for p in exc.problems]
    return _build(data, source)


def _build(data: Any, source: Source) -> tuple[ThemeLibrary | None, list[Problem]]:
    parsed, problems = build(ThemeFile, data, source)
    if parsed is None:
        # The file-level cross checks only run on a fully built file; report unknown categories
        # now anyway so one pass shows every problem we can find.
        return None, list(dict.fromkeys(problems + _raw_category_problems(data, source)))
    return ThemeLibrary(Path(source.file), parsed.categories, parsed.themes), []


def _raw_category_problems(data: Any, source: Source) -> list[Problem]:
    if not isinstance(data, dict):
        return []
    categories, themes = data.get("categories"), data.get("themes")
    if not isinstance(categories, dict) or not isinstance(themes, dict):
        return []
    problems = []
    for key, theme in themes.items():
        category = theme.get("category") if isinstance(theme, dict) else None
        if isinstance(category, str) and category not in categories:
            message, hint = unknown_category(category, [str(c) for c in categories])
            path = ("themes", str(key), "category")
            problems.append(Problem(source.file, source.line_of(path), dotted(path), message, hint))
    return problems


def load_themes(path: Path) -> ThemeLibrary:
    library, problems = check_themes_file(path)
    if library is None:
        raise ConfigError([str(p) for p in problems], hint=f"fix the keys above in {path}")
    return library


def themes_from_text(text: str, file: str = "<text>") -> ThemeLibrary:
    data, source = parse_yaml(text, Source(file))
    library, problems = _build(data, source)
    if library is None:
        raise ConfigError([str(p) for p in problems], hint=f"fix the keys above in {file}")
    return library


# --- selection --------------------------------------------------------------------------------


def unknown_theme_error(library: ThemeLibrary, key: str) -> UsageError:
    by_name = {t.name.lower(): k for k, t in library.themes.items()}
    close = difflib.get_close_matches(key.lower(), list(library.themes), n=5, cutoff=0.5)
    close += [by_name[n] for n in difflib.get_close_matches(key.lower(), list(by_name), n=3, cutoff=0.5)]
    close += [k for k in library.themes if key.lower() in k or key.lower() in library.themes[k].name.lower()]
    unique = list(dict.fromkeys(close))[:6]
    listing = "`ai-wallpaper themes list` shows all"
    hint = f"close matches: {', '.join(unique)}; {listing}" if unique else listing
    return UsageError(f"unknown theme {key!r} (in {library.file})", hint=hint)


def theme_weights(
    library: ThemeLibrary, mood: dict[str, Any] | None, recent: Sequence[str] = ()
) -> tuple[dict[str, float], dict[str, float], dict[str, list[str]]]:
    """Effective (category weights, theme weights, notes per theme) for this mood and history."""
    recent_set = set(recent)
    eligible = [k for k, t in library.themes.items() if t.weight > 0 and k not in recent_set]
    if not eligible:  # every theme was used recently: repeating beats failing
        eligible = [k for k, t in library.themes.items() if t.weight > 0]
    theme_w: dict[str, float] = {}
    notes: dict[str, list[str]] = {}
    for key in eligible:
        theme = library.themes[key]
        factor, why = theme.weather.multiplier(mood)
        theme_w[key] = theme.weight * factor
        notes[key] = why
    cat_w: dict[str, float] = {}
    for cat_key, category in library.categories.items():
        members = [k for k in eligible if library.themes[k].category == cat_key]
        base = sum(library.themes[k].weight for k in members)
        if category.weight <= 0 or base <= 0:
            continue
        cat_factor, _ = category.weather.multiplier(mood)
        cat_w[cat_key] = category.weight * cat_factor * sum(theme_w[k] for k in members) / base
    return cat_w, theme_w, notes


def theme_probabilities(
    library: ThemeLibrary, mood: dict[str, Any] | None = None, recent: Sequence[str] = ()
) -> dict[str, float]:
    """Exact chance of each theme being picked (themes list, tests)."""
    cat_w, theme_w, _ = theme_weights(library, mood, recent)
    total = sum(cat_w.values())
    out: dict[str, float] = {}
    for key, weight in theme_w.items():
        cat = library.themes[key].category
        in_cat = sum(w for k, w in theme_w.items() if library.themes[k].category == cat)
        out[key] = (cat_w.get(cat, 0.0) / total * weight / in_cat) if total > 0 and in_cat > 0 else 0.0
    return out


def select_theme(
    library: ThemeLibrary,
    rng: random.Random,
    *,
    mood: dict[str, Any] | None = None,
    recent: Sequence[str] = (),
    forced: str | None = None,
) -> ThemeChoice:
    if forced is not None:
        if forced not in library.themes:
            raise unknown_theme_error(library, forced)
        return ThemeChoice(forced, library.themes[forced], 1.0, 1.0, "forced with --theme")
    cat_w, theme_w, notes = theme_weights(library, mood, recent)
    cat_total = sum(cat_w.values())
    if cat_total <= 0:
        # The mood ruled everything out (affinities of 0): fall back to the plain weights.
        logger.warning("themes.mood_excluded_all", mood=(mood or {}).get("description"))
        cat_w, theme_w, notes = theme_weights(library, None, recent)
        cat_total = sum(cat_w.values())
    cat_keys = list(cat_w)
    category = rng.choices(cat_keys, weights=[cat_w[k] for k in cat_keys])[0]
    members = [k for k in theme_w if library.themes[k].category == category and theme_w[k] > 0]
    member_total = sum(theme_w[k] for k in members)
    key = rng.choices(members, weights=[theme_w[k] for k in members])[0]
    p_cat, p_theme = cat_w[category] / cat_total, theme_w[key] / member_total
    parts = [f"category {category} p={p_cat:.2f}", f"theme p={p_theme:.2f}"]
    if notes.get(key):
        parts.append("mood " + ", ".join(notes[key]))
    skipped = [k for k in recent if k in library.themes]
    if skipped:
        parts.append(f"avoided {len(set(skipped))} recent")
    return ThemeChoice(key, library.themes[key], p_cat, p_theme, "weighted pick: " + "; ".join(parts))


# --- prompt filling ---------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill_template(theme: Theme, rng: random.Random, mood: dict[str, Any] | None = None) -> str:
    """Pick a template and fill it: each {element}/{style}/{color} draws a different list item."""
    template = rng.choice(theme.templates)
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    draws: dict[str, list[str]] = {}
    for placeholder, list_name in LIST_PLACEHOLDERS.items():
        count = fields.count(placeholder)
        if count:
            items = list(dict.fromkeys(getattr(theme, list_name)))
            draws[placeholder] = rng.sample(items, count)
    phrases = mood_phrases(mood)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in draws:
            return draws[name].pop(0)
        return phrases.get(name, match.group(0))

    text = _PLACEHOLDER.sub(substitute, template.replace("{{", "\x00").replace("}}", "\x01"))
    return tidy(text.replace("\x00", "{").replace("\x01", "}"))


def tidy(text: str) -> str:
    """Collapse whitespace and doubled commas left by empty parts."""
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    text = re.sub(r"\s+,", ",", text)
    return text.strip(" ,")
