"""The real default sizes, 1920x1024 -> 7680x4096 -> 3840x2160, with very few steps (runs in CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from ai_wallpaper.cli import main
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.run_dir import RUN_JSON, STAGE_FILES


@pytest.mark.slow
def test_default_sizes_end_to_end(paths_with_models: Paths, tmp_path: Path) -> None:
    settings = {
        "seed": 7,
        "prompt": "a quiet harbour at dawn",
        "models": {"base": "builtin:tiny", "upscaler": "builtin:tiny"},
        # default sizes; only the step counts are cut so CI stays fast
        "pipeline": {"txt2img": {"steps": 2}, "enhance": {"steps": 3, "strength": 0.35}},
        "weather": {"enabled": False},
    }
    paths_with_models.config_dir.mkdir(parents=True)
    cfg = paths_with_models.config_dir / "settings.yaml"
    cfg.write_text(yaml.safe_dump(settings))
    out = tmp_path / "run"
    assert main(["generate", "--config", str(cfg), "--save-stages", "--no-wallpaper", "--output", str(out)]) == 0
    expected = {"base": (1920, 1024), "upscaled": (7680, 4096), "enhanced": (7680, 4096), "final": (3840, 2160)}
    for stage, size in expected.items():
        with Image.open(out / STAGE_FILES[stage]) as img:
            assert img.size == size, stage
    record = json.loads((out / RUN_JSON).read_text())
    assert record["status"] == "success"
    assert all(record["stages"][s]["status"] == "done" for s in expected)
