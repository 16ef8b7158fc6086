"""The schema engine: every problem reported at once, with file, line, key path and hint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import yaml

from ai_wallpaper.config.sample import render_sample
from ai_wallpaper.config.schema import Source, build, build_or_raise, option
from ai_wallpaper.config.settings import Settings, load_settings, settings_from_dict
from ai_wallpaper.config.yaml_loading import load_yaml, parse_yaml
from ai_wallpaper.core.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    size: int = option(64, "a size", min=8, multiple_of=8)
    mode: Literal["a", "b"] = option("a", "mode")


@dataclass(frozen=True)
class Outer:
    name: str = option(doc="required name")
    inner: Inner = option(factory=Inner, doc="inner section")
    tags: list[str] = option(factory=list, doc="tags")
    weights: dict[str, float] = option(factory=dict, doc="weights")
    limit: int | Literal["auto"] = option("auto", "auto or a number", min=1)


def test_all_problems_with_lines_and_hints(tmp_path: Path) -> None:
    text = "name: x\ninner:\n  size: 60\n  mode: c\n  sise: 1\ntags: [1]\nweights: {a: yes}\nlimit: 0\n"
    data, source = parse_yaml(text, Source("f.yaml"))
    value, problems = build(Outer, data, source)
    assert value is None
    rendered = sorted(str(p) for p in problems)
    assert rendered == sorted([
        "f.yaml:3: inner.size: must be a multiple of 8, got 60 (hint: use 56 or 64)",
        "f.yaml:4: inner.mode: expected one of 'a', 'b', got 'c'",
        "f.yaml:5: inner.sise: unknown key (hint: did you mean 'size'?)",
        "f.yaml:6: tags[0]: expected a string, got 1 (hint: quote the value)",
        "f.yaml:7: weights.a: expected a number, got True",
        "f.yaml:8: limit: must be >= 1, got 0",
    ])


def test_required_key_and_valid_build() -> None:
    _, problems = build(Outer, {}, Source("g.yaml"))
    assert [p.message for p in problems] == ["required key is missing"]
    ok = build_or_raise(Outer, {"name": "n", "limit": 3, "weights": {"w": 2}}, Source("g.yaml"))
    assert ok.limit == 3 and ok.weights == {"w": 2.0} and isinstance(ok.weights["w"], float)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [unclosed\nc: 3\n")
    with pytest.raises(ConfigError) as info:
        load_yaml(bad)
    assert "bad.yaml:" in str(info.value) and "invalid YAML" in str(info.value)


def test_missing_explicit_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "mine.yaml")


def test_sample_round_trips_to_defaults() -> None:
    sample = render_sample(Settings, ["header"])
    assert settings_from_dict(yaml.safe_load(sample)) == Settings()
    # every key is documented
    for line in sample.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            idx = sample.splitlines().index(line)
            assert sample.splitlines()[idx - 1].strip().startswith("#"), line


def test_settings_cross_checks() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_dict({"pipeline": {"txt2img": {"width": 128, "height": 64}, "enhance": {"tile": 1024}},
                            "desktop": {"setter": "command"}})
    text = str(info.value)
    assert "pipeline.enhance.tile: 1024 is larger than the image (512x256)" in text
    assert "desktop.command: setter 'command' needs a command" in text


def test_fingerprint_tracks_image_relevant_settings_only() -> None:
    a = Settings()
    b = settings_from_dict({"pipeline": {"txt2img": {"steps": 10}}})
    c = settings_from_dict({"logging": {"level": "debug"}, "desktop": {"keep": 3}})
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == c.fingerprint()
