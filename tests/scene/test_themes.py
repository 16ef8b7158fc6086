"""Theme library: the shipped file, schema errors (all at once, with lines), selection and filling."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest

from ai_wallpaper.core.errors import ConfigError, WallpaperError
from ai_wallpaper.core.paths import SHIPPED_CONFIG_DIR
from ai_wallpaper.scene.themes import (
    ThemeLibrary,
    fill_template,
    load_themes,
    select_theme,
    theme_probabilities,
    themes_from_text,
)

SHIPPED = SHIPPED_CONFIG_DIR / "themes.yaml"

SMALL = """
version: 1
categories:
  nature: {name: Nature, weight: 3}
  city: {name: City, weight: 1}
themes:
  forest:
    name: Forest
    category: nature
    templates: ["a {style} forest with {element} and {element}, {color}, {light}"]
    elements: [deer, a stream, mushrooms]
    styles: [photo]
    colors: [green]
    weather: {conditions: {fog: 4.0, clear: 0.5}}
  meadow:
    name: Meadow
    category: nature
    weight: 1
    templates: ["a meadow, {atmosphere}"]
  neon:
    name: Neon Street
    category: city
    templates: ["a neon street"]
    weather: {conditions: {rain: 3}, time_of_day: {day: 0}}
"""


@pytest.fixture(scope="module")
def shipped() -> ThemeLibrary:
    return load_themes(SHIPPED)


def test_shipped_library_is_large_and_valid(shipped: ThemeLibrary) -> None:
    per_category = Counter(t.category for t in shipped.themes.values())
    assert len(shipped.themes) >= 40
    assert len(per_category) >= 8 and set(per_category) == set(shipped.categories)
    assert min(per_category.values()) >= 4
    assert len({t.name for t in shipped.themes.values()}) == len(shipped.themes)


def test_every_shipped_template_fills_cleanly(shipped: ThemeLibrary) -> None:
    moods = [
        None,
        {"time_of_day": "night", "season": "winter", "condition": "snow"},
        {"time_of_day": "golden_hour", "season": "summer", "condition": None},
    ]
    for key, theme in shipped.themes.items():
        for seed in range(6):
            text = fill_template(theme, random.Random(seed), moods[seed % 3])
            assert "{" not in text and "}" not in text, (key, text)
            assert ",," not in text.replace(" ", "") and 40 < len(text) < 400, (key, text)


def test_all_errors_are_reported_at_once_with_lines() -> None:
    text = """version: 1
categories:
  nature: {name: Nature, weight: 1}
themes:
  forest:
    name: Forest
    category: natur
    templates: ["{element} in {colour}"]
    wieght: 2
  Bad Key:
    name: Bad
    category: nature
    templates: ["a {style} and a {style}"]
    styles: [only-one]
    weather: {conditions: {sunny: 2}, seasons: {winter: -1}}
"""
    with pytest.raises(ConfigError) as err:
        themes_from_text(text, "themes.yaml")
    problems = err.value.problems
    joined = "\n".join(problems)
    assert "themes.yaml:9: themes.forest.wieght: unknown key (hint: did you mean 'weight'?)" in joined
    assert "themes.yaml:15: themes.Bad Key.weather.conditions.sunny: unknown condition 'sunny'" in joined
    assert "themes.Bad Key.weather.seasons.winter: multiplier must be between 0 and 100, got -1.0" in joined
    assert "themes.yaml:8: themes.forest.templates[0]: uses {element} but `elements` is empty" in joined
    assert "themes.forest.templates[0]: unknown placeholder {colour} (hint: did you mean {color}?)" in joined
    assert (
        "themes.yaml:7: themes.forest.category: unknown category 'natur' (hint: did you mean 'nature'?)"
        in joined
    )
    assert "themes.yaml:13: themes.Bad Key.templates[0]: uses {style} 2 times" in joined
    assert len(problems) == 7  # the broken theme's own cross-checks run too
    # Once the nested tables are fixed, the remaining problems are the same, none new.
    fixed = text.replace("sunny: 2", "clear: 2").replace("winter: -1", "winter: 1")
    with pytest.raises(ConfigError) as err2:
        themes_from_text(fixed, "themes.yaml")
    joined = "\n".join(err2.value.problems)
    assert "uses {style} 2 times but `styles` has only 1 distinct item(s)" in joined


def test_weights_that_leave_nothing_to_pick_are_errors() -> None:
    text = """categories:
  a: {name: A, weight: 0}
  b: {name: B, weight: 1}
themes:
  t1: {name: T1, category: a, templates: [x]}
  t2: {name: T2, category: b, weight: 0, templates: [y]}
"""
    with pytest.raises(ConfigError) as err:
        themes_from_text(text, "t.yaml")
    joined = "\n".join(err.value.problems)
    assert "categories.b: category 'b' has weight 1 but no theme with a weight above 0" in joined
    assert "categories: all category weights are 0: nothing can be picked" in joined
    with pytest.raises(ConfigError, match=r"themes.Bad Key: key 'Bad Key' must be lower-case .*e.g. bad_key"):
        themes_from_text(
            "categories: {b: {name: B}}\nthemes: {Bad Key: {name: X, category: b, templates: [x]}}\n"
        )
    with pytest.raises(ConfigError, match=r"t.yaml:1: categories: needs at least one category"):
        themes_from_text("categories: {}\nthemes: {}\n", "t.yaml")


def test_probabilities_follow_weights_and_mood() -> None:
    lib = themes_from_text(SMALL)
    plain = theme_probabilities(lib)
    assert plain == pytest.approx({"forest": 0.375, "meadow": 0.375, "neon": 0.25})
    # Fog quadruples the forest; the nature category grows with the mean of its themes' affinities.
    foggy = theme_probabilities(lib, {"condition": "fog", "time_of_day": "night"})
    nature = 3 * (4 + 1) / 2
    assert foggy["forest"] == pytest.approx(nature / (nature + 1) * 4 / 5)
    assert foggy["neon"] == pytest.approx(1 / (nature + 1))
    # A multiplier of 0 rules a theme out in that mood.
    assert theme_probabilities(lib, {"time_of_day": "day"})["neon"] == 0.0
    assert sum(theme_probabilities(lib, {"condition": "rain"}).values()) == pytest.approx(1.0)


def test_selection_is_seeded_and_matches_probabilities() -> None:
    lib = themes_from_text(SMALL)
    picks = [select_theme(lib, random.Random(s)).key for s in range(20)]
    assert picks == [select_theme(lib, random.Random(s)).key for s in range(20)]
    counts = Counter(select_theme(lib, random.Random(s), mood={"condition": "fog"}).key for s in range(3000))
    expected = theme_probabilities(lib, {"condition": "fog"})
    for key, p in expected.items():
        assert abs(counts[key] / 3000 - p) < 0.03, (key, counts)


def test_recent_themes_are_avoided_unless_nothing_is_left() -> None:
    lib = themes_from_text(SMALL)
    for s in range(50):
        assert select_theme(lib, random.Random(s), recent=["forest", "neon"]).key == "meadow"
    choice = select_theme(lib, random.Random(1), recent=["forest", "neon", "meadow"])
    assert choice.key in lib.themes  # all recent: repeat rather than fail
    assert "avoided 2 recent" in select_theme(lib, random.Random(3), recent=["forest", "neon"]).reason


def test_forced_theme_and_unknown_key_suggestions(shipped: ThemeLibrary) -> None:
    forced = select_theme(shipped, random.Random(0), forced="snowy_village", recent=["snowy_village"])
    assert forced.key == "snowy_village" and forced.reason == "forced with --theme"
    assert forced.ref().category == "atmosphere"
    with pytest.raises(WallpaperError) as err:
        select_theme(shipped, random.Random(0), forced="snowy_vilage")
    assert "unknown theme 'snowy_vilage'" in str(err.value)
    assert err.value.hint is not None and "close matches: snowy_village" in err.value.hint
    with pytest.raises(WallpaperError) as err2:
        select_theme(shipped, random.Random(0), forced="cathedral")  # matches by name too
    assert err2.value.hint is not None and "gothic_cathedral" in err2.value.hint


def test_weather_moves_the_shipped_choice(shipped: ThemeLibrary) -> None:
    clear = theme_probabilities(shipped, {"condition": "clear", "season": "summer", "time_of_day": "day"})
    snowy = theme_probabilities(shipped, {"condition": "snow", "season": "winter", "time_of_day": "night"})
    assert snowy["snowy_village"] > 5 * clear["snowy_village"]
    assert snowy["cozy_cabin"] > 3 * clear["cozy_cabin"]
    assert clear["tropical_lagoon"] > snowy["tropical_lagoon"]


def test_fill_draws_distinct_items_and_mood_words() -> None:
    lib = themes_from_text(SMALL)
    forest = lib.themes["forest"]
    for s in range(30):
        text = fill_template(forest, random.Random(s), {"time_of_day": "dusk", "season": "autumn"})
        match = re.fullmatch(r"a photo forest with (.+) and (.+), green, deep blue-hour dusk", text)
        assert match and match.group(1) != match.group(2), text
    meadow = fill_template(lib.themes["meadow"], random.Random(0), {"condition": "fog"})
    assert meadow == "a meadow, drifting fog and layered mist"


def test_load_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_themes(tmp_path / "nope.yaml")


def test_a_template_with_thousands_of_unknown_placeholders_is_checked_quickly() -> None:
    import time

    template = "{" + "}{".join(f"p{i}" for i in range(10000)) + "}"
    text = ("categories:\n  c: {name: C}\nthemes:\n  t:\n    name: T\n    category: c\n"
            f"    templates: ['{template}']\n")
    started = time.process_time()
    with pytest.raises(ConfigError) as err:
        themes_from_text(text, "themes.yaml")
    assert time.process_time() - started < 1.0
    assert len(err.value.problems) == 11 and "... and 9990 more unknown placeholders" in err.value.problems[-1]


def test_theme_token_counts_use_the_plans_tokenizer_and_a_fixed_seed(shipped: ThemeLibrary, tmp_path: Path) -> None:
    """`themes list` counts a filled example (seed 0) with the planner's composition and counting."""
    from ai_wallpaper.catalog.builtin import builtin_tokenizer_dir
    from ai_wallpaper.commands.themes_cmd import theme_tokens
    from ai_wallpaper.scene.planner import rng_for
    from ai_wallpaper.scene.prompts import rewrite_prompt

    tok = builtin_tokenizer_dir(tmp_path / "builtin")
    for key in ("misty_pine_valley", "ink_mountains"):
        theme = shipped.themes[key]
        count, approximate = theme_tokens(theme, [tok])
        assert not approximate and count > 0
        assert theme_tokens(theme, [tok]) == (count, False)  # the same example every time
        planned = rewrite_prompt(fill_template(theme, rng_for(0, "prompt"), None), "", [],
                                 prepend=theme.prompt_modifiers.prepend, append=theme.prompt_modifiers.append,
                                 tokenizer_dirs=[tok])
        assert planned.token_counts["prompt"] == count
        rough, approximate = theme_tokens(theme, [])
        assert approximate and 0 < rough <= count
