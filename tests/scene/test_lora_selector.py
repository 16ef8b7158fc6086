"""LoRASelector: hints, compatibility, mood, stacking rules, weights, determinism, errors."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_wallpaper.config.settings import settings_from_dict
from ai_wallpaper.config.vocabulary import LoraHints
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene import lora_library as loras
from ai_wallpaper.scene.lora_selector import mood_words, select_stack
from ai_wallpaper.scene.plan import LoraChoice
from tests import lora_factory as lf

NONE = LoraHints()


def make_library(tmp_path: Path, paths: Paths, entries: dict[str, dict[str, Any]], *,
                 rules: dict[str, Any] | None = None, enabled: bool = True,
                 files: dict[str, Any] | None = None) -> loras.LoraLibrary:
    """Write every entry's file (an SDXL LoRA header unless `files` says otherwise) and loras.yaml."""
    lib_dir = tmp_path / "lib"
    for i, (key, entry) in enumerate(entries.items()):
        entry.setdefault("file", f"{key}.safetensors")
        keys = (files or {}).get(key, lf.sdxl_kohya_keys)
        if keys is not None:
            lf.write_keys(lib_dir / entry["file"], keys(), seed=i)
    f = tmp_path / "loras.yaml"
    f.write_text(yaml.safe_dump({"stacking_rules": rules or {}, "loras": entries}))
    settings = settings_from_dict({"loras": {"file": str(f), "directory": str(lib_dir), "enabled": enabled}})
    return loras.load_library(paths, settings, tmp_path / "settings.yaml")


def pick(library: loras.LoraLibrary, hints: LoraHints = NONE, seed: int = 0, theme: str | None = "forest",
         category: str | None = "nature", mood: dict[str, Any] | None = None) -> tuple[LoraChoice, ...]:
    return select_stack(library, hints, theme_key=theme, category=category, mood=mood,
                        rng=random.Random(seed))


def names(stack: tuple[LoraChoice, ...]) -> list[str]:
    return [c.name for c in stack]


def test_required_preferred_excluded(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {
        "req": {"type": "style"}, "pref": {"type": "detail", "chance": 0.0},
        "banned": {"type": "lighting", "chance": 1.0}, "other": {"type": "concept", "chance": 0.0}},
        rules={"max_loras": 4, "weight_sum_max": 8})
    hints = LoraHints(required=("req",), preferred=("pref",), excluded=("banned",))
    for seed in range(20):
        stack = pick(lib, hints, seed)
        assert names(stack) == ["req", "pref"]  # required first, preferred next, chance 0 / excluded never
    stack = pick(lib, hints)
    assert "required by theme 'forest'" in stack[0].reason and "preferred" in stack[1].reason
    assert stack[0].sha256 == lib.status("req").sha256 and len(stack[0].sha256) == 64
    assert stack[0].file == str(lib.loras["req"].path)


def test_weights_are_seeded_and_inside_their_ranges(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {
        "a": {"weight_range": [0.2, 0.7], "chance": 1.0},
        "b": {"weight_range": [-1.0, -0.5], "chance": 1.0, "type": "detail"}},
                       rules={"weight_sum_max": 5})
    seen = set()
    for seed in range(30):
        stack = pick(lib, seed=seed)
        assert stack == pick(lib, seed=seed)  # same seed, same stack
        w = {c.name: c.weight for c in stack}
        assert 0.2 <= w["a"] <= 0.7 and -1.0 <= w["b"] <= -0.5
        seen.add((w["a"], w["b"]))
    assert len(seen) > 20  # and the seed matters


def test_stacking_rules_hold_for_every_seed(tmp_path: Path, paths: Paths) -> None:
    entries = {f"s{i}": {"type": "style", "chance": 0.8, "weight_range": [0.4, 0.9]} for i in range(4)}
    entries |= {f"d{i}": {"type": "detail", "chance": 0.8, "weight_range": [0.4, 0.9]} for i in range(4)}
    lib = make_library(tmp_path, paths, entries,
                       rules={"max_loras": 3, "type_limits": {"style": 1}, "weight_sum_max": 1.5})
    sizes = set()
    for seed in range(60):
        stack = pick(lib, seed=seed)
        sizes.add(len(stack))
        assert len(stack) <= 3
        assert sum(c.type == "style" for c in stack) <= 1
        assert sum(abs(c.weight) for c in stack) <= 1.5 + 1e-9
        for c in stack:
            assert 0.4 <= c.weight <= 0.9, c
        assert len(set(names(stack))) == len(stack)
    assert max(sizes) >= 2 and len(sizes) > 1


def test_optional_lora_is_scaled_into_the_budget_or_skipped(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {"req": {"weight_range": [1.0, 1.0]},
                                         "flex": {"weight_range": [0.1, 0.9], "type": "detail"},
                                         "stiff": {"weight_range": [0.8, 0.9], "type": "lighting"}},
                       rules={"weight_sum_max": 1.3})
    stack = pick(lib, LoraHints(required=("req",), preferred=("stiff", "flex")))
    assert names(stack) == ["req", "flex"]  # stiff cannot fit 0.3; flex can be scaled to it
    assert stack[1].weight == pytest.approx(0.3) and "scaled" in stack[1].reason


def test_required_weights_are_scaled_down_together(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {"a": {"weight_range": [0.5, 1.0]},
                                         "b": {"weight_range": [0.5, 1.0], "type": "detail"}},
                       rules={"weight_sum_max": 1.2})
    for seed in range(10):
        stack = pick(lib, LoraHints(required=("a", "b")), seed)
        assert names(stack) == ["a", "b"]
        assert sum(c.weight for c in stack) <= 1.2 + 1e-9
        assert all(0.5 <= c.weight <= 1.0 for c in stack)


def test_compatibility_and_mood_affinity(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {
        "forest-only": {"compatible_themes": ["forest"], "chance": 1.0, "type": "a"},
        "city-cat": {"compatible_categories": ["city"], "chance": 1.0, "type": "b"},
        "nature-cat": {"compatible_categories": ["nature"], "chance": 1.0, "type": "c"},
        "night": {"moods": ["night", "golden hour"], "chance": 1.0, "type": "d"}},
        rules={"max_loras": 4, "weight_sum_max": 8})
    assert sorted(names(pick(lib))) == ["forest-only", "nature-cat"]
    assert sorted(names(pick(lib, mood={"time_of_day": "night", "condition": "clear"}))) == [
        "forest-only", "nature-cat", "night"]
    assert "mood match: night" in pick(lib, mood={"time_of_day": "night"})[0].reason  # matches go first
    assert "night" in names(pick(lib, mood={"time_of_day": "golden_hour"}))
    assert names(pick(lib, theme="street", category="city")) == ["city-cat"]
    assert names(pick(lib, theme=None, category=None)) == []  # fixed prompt: only unrestricted LoRAs


def test_mood_words_reads_values_nested_and_flags() -> None:
    assert mood_words({"time_of_day": "Golden Hour", "weather": {"family": "rain"}, "is_cold": True,
                       "tags": ["Snow", 3]}) == {"golden_hour", "rain", "is_cold", "snow"}
    assert mood_words(None) == set()


def test_bad_optional_files_are_skipped(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {
        "good": {"chance": 1.0, "type": "a"}, "old": {"chance": 1.0, "type": "b"},
        "loha": {"chance": 1.0, "type": "c"}, "gone": {"chance": 1.0, "type": "d"}},
        rules={"max_loras": 4, "weight_sum_max": 8},
        files={"old": lf.sd15_kohya_keys, "loha": lf.loha_keys, "gone": None})
    assert names(pick(lib, LoraHints(preferred=("gone", "loha", "old")))) == ["good"]


def test_duplicate_content_is_used_once(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {"a": {"chance": 1.0}, "b": {"chance": 1.0, "type": "detail"}},
                       rules={"weight_sum_max": 8})
    lib.loras["b"].path.write_bytes(lib.loras["a"].path.read_bytes())
    assert len(pick(lib)) == 1
    with pytest.raises(ConfigError, match=r"'b'.*same file content as LoRA 'a'.*rule: duplicates"):
        pick(lib, LoraHints(required=("a", "b")))


@pytest.mark.parametrize(("entries", "rules", "files", "hints", "message"), [
    ({}, {}, {}, LoraHints(required=("nope",)), "'nope': there is no such LoRA"),
    ({"x": {"enabled": False}}, {}, {}, LoraHints(required=("x",)), "'x': it is disabled.*rule: enabled"),
    ({"x": {}}, {}, {}, LoraHints(required=("x",), excluded=("x",)), "also excludes it"),
    ({"x": {"compatible_themes": ["desert"]}}, {}, {}, LoraHints(required=("x",)),
     "'x': it does not list this theme.*rule: compatible_themes"),
    ({"x": {}}, {}, {"x": None}, LoraHints(required=("x",)), "'x': file not found.*rule: file \\(missing\\)"),
    ({"x": {}}, {}, {"x": lf.sd15_kohya_keys}, LoraHints(required=("x",)), "SD1.*rule: file \\(sd15-lora\\)"),
    ({"x": {}}, {}, {"x": lf.lokr_keys}, LoraHints(required=("x",)), "LoKr.*rule: file \\(lokr\\)"),
    ({"x": {}, "y": {"type": "detail"}}, {"max_loras": 1}, {}, LoraHints(required=("x", "y")),
     "requires 2 LoRAs \\(x, y\\) but stacking_rules.max_loras is 1"),
    ({"x": {}, "y": {}}, {"type_limits": {"style": 1}}, {}, LoraHints(required=("x", "y")),
     "2 LoRAs of type 'style' \\(x, y\\).*type_limits.style is 1"),
    ({"x": {"weight_range": [1.5, 2]}, "y": {"weight_range": [1, 2], "type": "detail"}},
     {"weight_sum_max": 2}, {}, LoraHints(required=("x", "y")),
     "lowest weights already sum to 2.5 > .*weight_sum_max 2"),
])
def test_required_loras_that_break_rules_are_errors(tmp_path: Path, paths: Paths, entries: dict[str, Any],
                                                    rules: dict[str, Any], files: dict[str, Any],
                                                    hints: LoraHints, message: str) -> None:
    lib = make_library(tmp_path, paths, entries, rules=rules, files=files)
    with pytest.raises(ConfigError, match=message) as err:
        pick(lib, hints)
    assert "theme 'forest'" in str(err.value)


def test_all_required_problems_are_reported_together(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {"x": {"enabled": False}, "y": {}}, files={"y": None})
    with pytest.raises(ConfigError) as err:
        pick(lib, LoraHints(required=("x", "y", "z")))
    assert len(err.value.problems) == 3


def test_disabled_in_settings_gives_an_empty_stack(tmp_path: Path, paths: Paths) -> None:
    lib = make_library(tmp_path, paths, {"x": {"chance": 1.0}}, enabled=False)
    assert pick(lib, LoraHints(required=("x",))) == ()


def test_stack_is_immutable(tmp_path: Path, paths: Paths) -> None:
    import dataclasses

    stack = pick(make_library(tmp_path, paths, {"x": {"chance": 1.0}}))
    assert isinstance(stack, tuple) and len(stack) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        stack[0].weight = 2.0  # type: ignore[misc]
