"""Run directory: atomic records, checkpoints, refusal to overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ai_wallpaper.core import atomic
from ai_wallpaper.core.errors import ConfigError, RunError
from ai_wallpaper.render.run_dir import RUN_JSON, RunDirectory
from ai_wallpaper.scene.plan import LoraChoice, Plan, Size, ThemeRef

RUN_ID = "20261202-101010-abcdef"


def make_plan() -> Plan:
    return Plan(prompt="p", negative_prompt="n", seed=5, base_size=Size(128, 64), upscaled_size=Size(512, 256),
                final_size=Size(480, 270), models={"base": "builtin:tiny", "refiner": None, "upscaler": "x"},
                settings_fingerprint="abc", theme=ThemeRef("k", "K", "c", "why"),
                loras=(LoraChoice("l", "/loras/l.safetensors", "00", "style", 0.5, ("tw",), "r"),),
                token_counts={"prompt": 3})


def test_plan_json_round_trip() -> None:
    plan = make_plan()
    assert Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_create_refuses_non_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(RunError, match="already exists and is not empty") as info:
        RunDirectory.create(tmp_path, run_id="r", plan=make_plan(), settings={}, trigger="manual")
    assert "--resume" in str(info.value)
    assert (tmp_path / "x").read_text() == "keep me"


def test_stage_records_and_images(tmp_path: Path) -> None:
    run = RunDirectory.create(tmp_path / "run", run_id=RUN_ID, plan=make_plan(), settings={"seed": 1}, trigger="manual")
    img = Image.new("RGB", (16, 8), (10, 20, 30))
    run.save_image("base", img, compress_level=1, text={"k": "v"})
    run.mark_stage("base", status="done", seconds=1.23456, peak_rss=300 * 2**20, file="01_base.png")
    reopened = RunDirectory.open(tmp_path / "run")
    assert reopened.stage_done("base") and not reopened.stage_done("upscaled")
    assert reopened.record.stages["base"].peak_rss_mb == 300.0
    assert reopened.plan == make_plan()
    loaded = reopened.load_image("base")
    assert loaded.tobytes() == img.tobytes()
    with Image.open(tmp_path / "run" / "01_base.png") as png:
        assert png.text["k"] == "v"
    assert not list((tmp_path / "run").glob(".*part"))  # no temp files left behind


def test_open_rejects_non_run_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run directory"):
        RunDirectory.open(tmp_path)


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / RUN_JSON
    atomic.write_text(target, "old")

    def boom(fh: object) -> None:
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic.write_with(target, boom)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == [RUN_JSON]


def test_atomic_files_get_the_process_umask_permissions_not_mkstemp_0600(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    try:
        for mask in (0o022, 0o077):
            atomic.set_process_umask(mask)
            target = tmp_path / f"f{mask:o}.txt"
            atomic.write_text(target, "x")
            assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    finally:
        atomic.set_process_umask(umask)
