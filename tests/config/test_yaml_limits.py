"""Config loading is total and bounded: one regression test per kind of hostile or broken file.

Every case goes through the real loaders (settings, themes, loras) and real files, and must end in
a clean `ConfigError` naming `file:line` - quickly, in little memory, never another exception.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ai_wallpaper.config.settings import load_settings, settings_from_dict
from ai_wallpaper.config.yaml_loading import MAX_BYTES, MAX_DEPTH, MAX_NODES
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene import lora_library as loras
from ai_wallpaper.scene.themes import load_themes

REPO = Path(__file__).resolve().parents[2]

# 9 levels of 9 aliases each: 9^9 = 387 million strings once expanded, from 342 bytes.
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))


def _settings_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value


def _write(tmp_path: Path, text: str | bytes, name: str = "settings.yaml") -> Path:
    f = tmp_path / name
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text, encoding="utf-8")
    return f


def _one_problem_at(err: ConfigError, f: Path, line: int) -> str:
    assert len(err.problems) == 1, err.problems
    assert err.problems[0].startswith(f"{f}:{line}: "), err.problems[0]
    return err.problems[0]


def _cpu(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    with contextlib.suppress(ConfigError):
        fn()
    return time.process_time() - start


# --- aliases ------------------------------------------------------------------------------------


def test_billion_laughs_is_refused_fast_and_small(tmp_path: Path) -> None:
    f = _write(tmp_path, BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 400
    message = _one_problem_at(_settings_error(f), f, 5)  # `e` is the first value past the limit
    assert f"more than {MAX_NODES:,} values" in message and "alias" in message
    cpu = _cpu(lambda: load_settings(f))
    assert cpu < 1.0, f"{cpu:.2f} s of CPU"  # before: > 60 s and ~3 GB, never finished
    tracemalloc.start()
    try:
        _cpu(lambda: load_settings(f))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 300 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_billion_laughs_in_themes_and_loras(tmp_path: Path, paths: Paths) -> None:
    themes = _write(tmp_path, BILLION_LAUGHS, "themes.yaml")
    with pytest.raises(ConfigError, match=rf"themes\.yaml:5: .*more than {MAX_NODES:,} values"):
        load_themes(themes)
    library = _write(tmp_path, BILLION_LAUGHS, "loras.yaml")
    settings = settings_from_dict({"loras": {"file": str(library)}})
    start = time.process_time()
    with pytest.raises(ConfigError, match=rf"loras\.yaml:5: .*more than {MAX_NODES:,} values"):
        loras.load_library(paths, settings, tmp_path / "settings.yaml")
    assert time.process_time() - start < 1.0


def test_wide_aliases_count_in_full(tmp_path: Path) -> None:
    # Not exponential, just wide: 400 uses of a 100-item list are 40,000 values.
    text = "x: &x [" + ",".join(["1"] * 100) + "]\ny: [" + ",".join(["*x"] * 400) + "]\n"
    f = _write(tmp_path, text)
    _one_problem_at(_settings_error(f), f, 2)


@pytest.mark.parametrize("text", ["a: &a [1, *a]\n", "a: &a {b: *a}\n", "a: &a\n  b:\n    c: *a\n"])
def test_recursive_alias_is_refused(tmp_path: Path, text: str) -> None:
    f = _write(tmp_path, text)
    message = _one_problem_at(_settings_error(f), f, text.count("\n"))
    assert "recursive alias" in message


def test_plain_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    text = ("categories: {a: {name: A}}\nbase: &base {name: Base, category: a, templates: ['x {element}'],"
            " elements: [e]}\n")
    f = _write(tmp_path, text.replace("base: &base", "themes:\n  one: &base") + "  two:\n    <<: *base\n"
               "    name: Two\n", "themes.yaml")
    library = load_themes(f)
    assert library.themes["two"].name == "Two" and library.themes["two"].elements == ["e"]


# --- structure ----------------------------------------------------------------------------------


def test_ten_thousand_brackets(tmp_path: Path) -> None:
    f = _write(tmp_path, "[" * 10_000)
    _one_problem_at(_settings_error(f), f, 1)
    assert _cpu(lambda: load_settings(f)) < 1.0


@pytest.mark.parametrize("style", ["flow", "block"])
def test_nesting_deeper_than_the_limit(tmp_path: Path, style: str) -> None:
    depth = MAX_DEPTH + 6
    if style == "flow":
        text = "a: " + "[" * depth + "]" * depth + "\n"
        line = 1
    else:
        text = "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "leaf\n"
        line = MAX_DEPTH + 1
    f = _write(tmp_path, text)
    message = _one_problem_at(_settings_error(f), f, line)
    assert f"nested more than {MAX_DEPTH} levels deep" in message


def test_multiple_documents_are_refused(tmp_path: Path) -> None:
    f = _write(tmp_path, "seed: 1\n---\nseed: 2\n")
    assert "single document" in _one_problem_at(_settings_error(f), f, 2)


# --- bytes --------------------------------------------------------------------------------------


def test_oversize_file_is_refused_before_parsing(tmp_path: Path) -> None:
    f = _write(tmp_path, BILLION_LAUGHS * (4 * MAX_BYTES // len(BILLION_LAUGHS)))
    size = f.stat().st_size
    err = _settings_error(f)
    assert len(err.problems) == 1
    assert f"{size:,} bytes" in err.problems[0] and "256 KiB limit" in err.problems[0]
    assert _cpu(lambda: load_settings(f)) < 0.1  # never read past the limit, never parsed
    at_limit = _write(tmp_path, "# " + "x" * (MAX_BYTES - 11) + "\nseed: 3\n")
    assert at_limit.stat().st_size == MAX_BYTES and load_settings(at_limit)[0].seed == 3


def test_non_utf8_byte_names_offset_and_line(tmp_path: Path) -> None:
    f = _write(tmp_path, b"seed: 1\nprompt: caf\xe9 au lait\n")
    message = _one_problem_at(_settings_error(f), f, 2)
    assert "byte 0xe9 at offset 19 (line 2, column 12) is not valid UTF-8" in message


def test_control_character_names_line_and_column(tmp_path: Path) -> None:
    f = _write(tmp_path, "seed: 1\nprompt: a\x00b\n")
    message = _one_problem_at(_settings_error(f), f, 2)
    assert "U+0000 at line 2, column 10" in message


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "settings.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in str(_settings_error(fifo))


# --- syntax -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "line"), [
    ("output:\n\twidth: 3840\n", 2),
    ("output:\n  width: 3840\n\theight: 2160\n", 3),
])
def test_tab_indentation_is_named(tmp_path: Path, text: str, line: int) -> None:
    f = _write(tmp_path, text)
    message = _one_problem_at(_settings_error(f), f, line)
    assert "tab" in message and "indent with spaces" in message


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-02-30", "cannot read '2026-02-30' as !!timestamp: day is out of range for month"),
    ("!!timestamp soon", "cannot read 'soon' as !!timestamp"),  # PyYAML: AttributeError
    ("!!int many", "cannot read 'many' as !!int"),
    ("!!python/object:os.system x", "could not determine a constructor"),
])
def test_values_pyyaml_cannot_construct(tmp_path: Path, value: str, expected: str) -> None:
    f = _write(tmp_path, f"seed: 1\nprompt: {value}\n")
    assert expected in _one_problem_at(_settings_error(f), f, 2)


@pytest.mark.parametrize("number", ["1" * 5000, "0x" + "f" * 20_000, ":".join(["59"] * 50_000)])
def test_absurdly_long_numbers(tmp_path: Path, number: str) -> None:
    f = _write(tmp_path, f"seed: {number}\n")
    assert "too long" in _one_problem_at(_settings_error(f), f, 1)
    assert _cpu(lambda: load_settings(f)) < 1.0


# --- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", ".Inf"])
def test_non_finite_numbers_are_refused_in_settings(tmp_path: Path, value: str) -> None:
    f = _write(tmp_path, f"pipeline:\n  enhance:\n    strength: {value}\nweather:\n  location:\n"
                         f"    latitude: {value}\n")
    err = _settings_error(f)
    assert sorted(p.split(": ")[0:2][1] for p in err.problems) == [
        "pipeline.enhance.strength", "weather.location.latitude"]
    assert all("must be a finite number" in p and ".nan and .inf are not allowed" in p for p in err.problems)
    assert [p.split(": ")[0] for p in err.problems] == [f"{f}:3", f"{f}:6"]


def test_non_finite_numbers_are_refused_in_themes_and_loras(tmp_path: Path, paths: Paths) -> None:
    themes = _write(tmp_path, "categories: {a: {name: A, weight: .inf}}\nthemes:\n  t: {name: T, category: a,"
                              " weight: .nan, templates: [x]}\n", "themes.yaml")
    with pytest.raises(ConfigError) as err:
        load_themes(themes)
    joined = "\n".join(err.value.problems)
    assert f"{themes}:1: categories.a.weight: must be a finite number, got inf" in joined
    assert f"{themes}:3: themes.t.weight: must be a finite number, got nan" in joined
    library = _write(tmp_path, "loras:\n  x:\n    file: x.safetensors\n    weight_range: [.nan, 1]\n"
                               "    chance: -.inf\n", "loras.yaml")
    settings = settings_from_dict({"loras": {"file": str(library)}})
    with pytest.raises(ConfigError) as err2:
        loras.load_library(paths, settings, tmp_path / "settings.yaml")
    joined = "\n".join(err2.value.problems)
    assert "loras.yaml:4: loras.x.weight_range[0]: must be a finite number, got nan" in joined
    assert "loras.yaml:5: loras.x.chance: must be a finite number, got -inf" in joined


def test_duplicate_keys_in_settings_name_both_lines(tmp_path: Path) -> None:
    f = _write(tmp_path, "seed: 1\noutput:\n  width: 3840\n  height: 2160\n  width: 1920\nseed: 2\n"
                         "desktop: {keep: 3, keep: 4}\n")
    err = _settings_error(f)
    assert err.problems == [
        f"{f}:6: seed: duplicate key 'seed': first on line 1, again on line 6 (YAML would silently keep only the "
        "last) (hint: remove or rename one of them)",
        f"{f}:5: output.width: duplicate key 'width': first on line 3, again on line 5 (YAML would silently keep "
        "only the last) (hint: remove or rename one of them)",
        f"{f}:7: desktop.keep: duplicate key 'keep': twice on line 7 (YAML would silently keep only the last) "
        "(hint: remove or rename one of them)",
    ]


def test_duplicate_keys_in_themes_are_reported_with_the_other_problems(tmp_path: Path) -> None:
    text = ("categories:\n  a: {name: A}\nthemes:\n  forest:\n    name: Forest\n    category: a\n"
            "    templates: ['{element}']\n    elements: [tree]\n  forest:\n    name: Forest 2\n"
            "    category: a\n    templates: [x]\n    wieght: 2\n")
    f = _write(tmp_path, text, "themes.yaml")
    with pytest.raises(ConfigError) as err:
        load_themes(f)
    joined = "\n".join(err.value.problems)
    assert f"{f}:9: themes.forest: duplicate key 'forest': first on line 4, again on line 9" in joined
    assert f"{f}:13: themes.forest.wieght: unknown key" in joined


def test_keys_that_collapse_to_one_name(tmp_path: Path) -> None:
    f = _write(tmp_path, "categories: {a: {name: A}}\nthemes:\n  t: {name: T, category: a, templates: [x],"
                         " weather: {conditions: {1: 1.0, '1': 2.0}}}\n", "themes.yaml")
    with pytest.raises(ConfigError, match=r"key '1' repeats the name '1'"):
        load_themes(f)


@pytest.mark.parametrize(("text", "expected"), [
    ("- seed\n- 1\n", ":1: expected a mapping, got list"),
    ("just text\n", ":1: expected a mapping, got str"),
    ("pipeline: []\n", ":1: pipeline: expected a mapping, got list"),
    ("weather: 3\n", ":1: weather: expected a mapping, got int"),
    ("output:\n  width: [3840]\n", ":2: output.width: expected an integer, got [3840]"),
    ("desktop:\n  command: {a: 1}\n", ":2: desktop.command: expected a list of a string, got dict"),
])
def test_wrong_section_types(tmp_path: Path, text: str, expected: str) -> None:
    f = _write(tmp_path, text)
    assert _one_problem_at(_settings_error(f), f, int(expected.split(":")[1])).endswith(expected.split(":", 2)[2])


def test_cross_field_checks_run_beside_other_problems(tmp_path: Path) -> None:
    # Each section has one wrong field AND a cross-field problem among the fields that are fine.
    f = _write(tmp_path, "pipeline:\n  upscale: {tile: 64, overlap: 40, half_precision: 3}\n"
                         "weather: {cache_minutes: -1, open_meteo_url: 'http://example.com/v1/forecast'}\n"
                         "desktop: {setter: command, keep: 0}\n")
    joined = "\n".join(_settings_error(f).problems)
    for expected in (
        ":2: pipeline.upscale.half_precision: expected true or false, got 3",
        ":2: pipeline.upscale.overlap: must be less than half of tile (64), got 40",
        ":3: weather.cache_minutes: must be >= 0, got -1",
        ":3: weather.open_meteo_url: 'http://example.com/v1/forecast' must use https",
        ":4: desktop.keep: must be >= 1, got 0",
        ":4: desktop.command: setter 'command' needs a command",  # Settings.check, across sections
    ):
        assert expected in joined, (expected, joined)


def test_a_check_that_needs_a_broken_field_is_skipped(tmp_path: Path) -> None:
    f = _write(tmp_path, "pipeline:\n  upscale: {tile: banana, overlap: 40}\n")
    assert _settings_error(f).problems == [
        f"{f}:2: pipeline.upscale.tile: expected an integer or one of 'auto', got 'banana'"]


def test_thousands_of_problems_are_listed_up_to_a_bound(tmp_path: Path) -> None:
    f = _write(tmp_path, "".join(f"key{i}: {i}\n" for i in range(5000)))
    err = _settings_error(f)
    assert len(err.problems) == 501 and err.problems[-1].endswith("... and 4500 more problems (the first 500 "
                                                                  "are listed)")
    assert _cpu(lambda: load_settings(f)) < 1.0


def test_every_problem_line_names_file_and_line(tmp_path: Path) -> None:
    f = _write(tmp_path, "")  # empty: valid, all defaults
    assert load_settings(f)[0].seed is None
    themes = _write(tmp_path, "", "themes.yaml")  # empty themes: problems, pointing at line 1
    with pytest.raises(ConfigError) as err:
        load_themes(themes)
    assert err.value.problems and all(re.search(rf"{re.escape(str(themes))}:1: ", p) for p in err.value.problems)


def test_a_missing_settings_file_is_an_error_whatever_its_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "settings.yaml")
