"""`plan` with monitors: the base size is chosen for them unless the settings file sets it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ai_wallpaper.cli import main
from ai_wallpaper.core.paths import Paths

PORTRAIT = {"desktop": {"setter": "none", "monitors": [{"name": "DP-1", "width": 1080, "height": 1920}]},
            "weather": {"enabled": False}, "prompt": "a tower", "seed": 5}


def _plan(paths: Paths, data: dict[str, object], capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    cfg = paths.config_dir / "settings.yaml"
    cfg.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["plan", "--config", str(cfg), *extra]) == 0
    return capsys.readouterr().out


def test_a_portrait_monitor_gets_a_portrait_base(paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    plan = json.loads(_plan(paths, PORTRAIT, capsys, "--json"))
    assert plan["base_size"] == {"width": 1088, "height": 1920}
    assert plan["final_size"] == {"width": 1080, "height": 1920}
    assert plan["screens"] == [{"name": "DP-1", "width": 1080, "height": 1920, "x": 0, "y": 0}]
    assert "monitors:   DP-1 1080x1920+0+0" in _plan(paths, PORTRAIT, capsys)


def test_a_base_size_in_the_file_wins_with_a_warning(paths: Paths, capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    fixed = {**PORTRAIT, "pipeline": {"txt2img": {"width": 1920, "height": 1024}}}
    text = _plan(paths, fixed, capsys)
    assert "sizes:      base 1920x1024" in text and "shows only 30%" in text
    single = {**PORTRAIT, "desktop": {**PORTRAIT["desktop"], "layout": "single"}}  # type: ignore[dict-item]
    assert json.loads(_plan(paths, single, capsys, "--json"))["screens"] == []
