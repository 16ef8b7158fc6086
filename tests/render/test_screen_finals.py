"""desktop.layout per-monitor: one cut of the 8K master per monitor, at its native size, in the run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.run_dir import RUN_JSON, STAGE_FILES, our_file_names
from ai_wallpaper.render.run_record import record_problems
from ai_wallpaper.render.stages.downsample import DownsampleConfig, run_downsample
from tests.render.test_pipeline import SMALL, generate

MONITORS = [{"name": "DP-1", "width": 160, "height": 90, "x": 0, "y": 0},
            {"name": "HDMI-A-1", "width": 64, "height": 112, "x": 160, "y": 0}]
WITH_MONITORS: dict[str, Any] = {**SMALL, "desktop": {"setter": "none", "monitors": MONITORS}}


def test_each_monitor_gets_its_own_cut_of_the_master(paths_with_models: Paths, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert generate(paths_with_models, "--save-stages", "--output", str(out), settings=WITH_MONITORS) == 0
    record = json.loads((out / RUN_JSON).read_text())
    assert [s["name"] for s in record["plan"]["screens"]] == ["DP-1", "HDMI-A-1"]
    assert record["plan"]["base_size"] == {"width": 128, "height": 64}  # set in the file: it wins
    final = record["stages"]["final"]
    assert final["file"] == "05_final_dp-1.png" and record["final"] == str(out / "05_final_dp-1.png")
    assert [(s["file"], s["width"], s["height"]) for s in final["screens"]] == [
        ("05_final_dp-1.png", 160, 90), ("05_final_hdmi-a-1.png", 64, 112)]
    assert not (out / STAGE_FILES["final"]).exists()  # no one-size-for-all image
    master = Image.open(out / STAGE_FILES["enhanced"]).convert("RGB")
    for screen in MONITORS:
        slug = str(screen["name"]).lower()
        with Image.open(out / f"05_final_{slug}.png") as img:
            assert img.size == (screen["width"], screen["height"])
            assert json.loads(img.text["ai-wallpaper"])["seed"] == 1234
            expected = run_downsample(master, DownsampleConfig(int(screen["width"]), int(screen["height"]), "center"))
            assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(expected))
    assert record_problems(record, "run.json") == []


def test_a_hostile_record_cannot_point_the_final_elsewhere(paths_with_models: Paths, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert generate(paths_with_models, "--output", str(out), settings=WITH_MONITORS) == 0
    record = json.loads((out / RUN_JSON).read_text())
    for field, value in (("file", "../../.bashrc"), ("file", "05_final_x/../../a.png")):
        bad = json.loads(json.dumps(record))
        bad["stages"]["final"][field] = value
        assert any("final.file" in p for p in record_problems(bad, "run.json"))
    bad = json.loads(json.dumps(record))
    bad["stages"]["final"]["screens"][1]["file"] = "/etc/passwd"
    assert any("final.screens[1]" in p for p in record_problems(bad, "run.json"))
    for screen in ({"name": "DP-1;rm", "width": 10, "height": 10, "x": 0, "y": 0},
                   {"name": "DP-1", "width": 10**9, "height": 90, "x": 0, "y": 0}):
        bad = json.loads(json.dumps(record))
        bad["plan"]["screens"] = [screen]
        assert any("screens[0]" in p for p in record_problems(bad, "run.json"))


@pytest.mark.parametrize("name, ours", [("05_final_dp-1.png", True), ("05_final_4k.png", True),
                                        ("05_final_../x.png", False), ("05_final_DP-1.png", False),
                                        ("06_final_dp-1.png", False)])
def test_monitor_files_count_as_ours_for_pruning(name: str, ours: bool) -> None:
    assert (name in our_file_names()) is ours
