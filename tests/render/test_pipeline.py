"""The whole chain on the built-in model: stages, run.json, metadata, determinism, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from ai_wallpaper.cli import main
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.run_dir import RUN_JSON, STAGE_FILES

SMALL: dict[str, Any] = {
    "seed": 1234,
    "prompt": "a lighthouse on a cliff at dusk",
    "models": {"base": "builtin:tiny", "upscaler": "builtin:tiny"},
    "pipeline": {
        "txt2img": {"width": 128, "height": 64, "steps": 3},
        "upscale": {"tile": 64, "overlap": 8},
        "enhance": {"tile": 256, "overlap": 64, "steps": 4, "strength": 0.5},
    },
    "output": {"width": 480, "height": 270},
    "weather": {"enabled": False},
    "desktop": {"setter": "none"},
}


def write_settings(paths: Paths, data: dict[str, Any]) -> Path:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    file = paths.config_dir / "settings.yaml"
    file.write_text(yaml.safe_dump(data), encoding="utf-8")
    return file


def generate(paths: Paths, *extra: str, settings: dict[str, Any] | None = None) -> int:
    cfg = write_settings(paths, settings or SMALL)
    return main(["generate", "--config", str(cfg), "--no-wallpaper", "--log-format", "json", *extra])


def test_the_stage_table_runs_every_recorded_stage_in_order() -> None:
    from ai_wallpaper.render.pipeline import STAGE_ORDER, STAGES

    assert tuple(name for name, _ in STAGES) == STAGE_ORDER == tuple(STAGE_FILES)
    assert all(step.__name__ == f"stage_{name}" for name, step in STAGES)


def test_full_chain_saves_every_stage(paths_with_models: Paths, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert generate(paths_with_models, "--save-stages", "--output", str(out)) == 0
    sizes = {"base": (128, 64), "upscaled": (512, 256), "enhanced": (512, 256), "final": (480, 270)}
    for stage, size in sizes.items():
        with Image.open(out / STAGE_FILES[stage]) as img:
            assert img.size == size, stage
    assert not (out / STAGE_FILES["refined"]).exists()  # no refiner configured
    record = json.loads((out / RUN_JSON).read_text())
    assert record["status"] == "success"
    assert record["stages"]["refined"]["status"] == "skipped"
    for stage in ("base", "upscaled", "enhanced", "final"):
        entry = record["stages"][stage]
        assert entry["status"] == "done" and entry["seconds"] > 0 and entry["peak_rss_mb"] > 100
    assert record["plan"]["seed"] == 1234 and record["self_test"] is True
    assert record["models"]["base"]["kind"] == "builtin"
    assert {"torch", "diffusers", "spandrel"} <= set(record["versions"])
    with Image.open(out / STAGE_FILES["final"]) as img:
        meta = json.loads(img.text["ai-wallpaper"])
        assert meta["seed"] == 1234 and meta["prompt"].startswith("a lighthouse")
        assert "not meaningful" in img.text["Comment"]
    # the enhancement changed the upscaled image, and the final is a downscale of the enhanced one
    up = np.asarray(Image.open(out / STAGE_FILES["upscaled"]), dtype=np.float32)
    enh = np.asarray(Image.open(out / STAGE_FILES["enhanced"]), dtype=np.float32)
    assert np.abs(up - enh).mean() > 0.5


def test_without_save_stages_keeps_only_the_final(paths_with_models: Paths, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert generate(paths_with_models, "--output", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [STAGE_FILES["final"], RUN_JSON]


def test_same_seed_gives_identical_bytes(paths_with_models: Paths, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert generate(paths_with_models, "--output", str(a)) == 0
    assert generate(paths_with_models, "--output", str(b)) == 0
    assert generate(paths_with_models, "--output", str(c), "--seed", "99") == 0
    final = STAGE_FILES["final"]
    assert (a / final).read_bytes() == (b / final).read_bytes()
    assert (a / final).read_bytes() != (c / final).read_bytes()


def test_resume_after_interruption_matches_uninterrupted(paths_with_models: Paths, tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert generate(paths_with_models, "--save-stages", "--output", str(whole)) == 0
    assert generate(paths_with_models, "--save-stages", "--output", str(cut)) == 0
    # Simulate a crash during enhancement: the later stages and their records are gone.
    record = json.loads((cut / RUN_JSON).read_text())
    for stage in ("enhanced", "final"):
        (cut / STAGE_FILES[stage]).unlink()
        del record["stages"][stage]
    record["status"] = "running"
    (cut / RUN_JSON).write_text(json.dumps(record))
    cfg = paths_with_models.config_dir / "settings.yaml"
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--resume", str(cut)]) == 0
    final = STAGE_FILES["final"]
    assert (whole / final).read_bytes() == (cut / final).read_bytes()
    resumed = json.loads((cut / RUN_JSON).read_text())
    assert resumed["status"] == "success" and resumed["stages"]["enhanced"]["status"] == "done"


def test_resume_refuses_changed_settings(paths_with_models: Paths, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / RUN_JSON).write_text("{}")
    cfg = write_settings(paths_with_models, SMALL)
    code = main(["generate", "--config", str(cfg), "--resume", str(run), "--steps", "9"])
    assert code == 2
    assert "--steps" in capsys.readouterr().err


def test_refiner_chain_hands_off_latents(paths_with_models: Paths, tmp_path: Path) -> None:
    settings = {**SMALL, "models": {**SMALL["models"], "refiner": "builtin:tiny-refiner"},
                "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False}}}
    out = tmp_path / "run"
    assert generate(paths_with_models, "--save-stages", "--output", str(out), settings=settings) == 0
    record = json.loads((out / RUN_JSON).read_text())
    assert record["stages"]["base"]["handoff"] == "latents"
    assert record["stages"]["refined"]["status"] == "done"
    assert record["stages"]["enhanced"]["status"] == "skipped"
    with Image.open(out / STAGE_FILES["refined"]) as img:
        assert img.size == (128, 64)


def test_an_enhancement_with_no_denoising_step_is_skipped_and_the_run_still_finishes(
        paths_with_models: Paths, tmp_path: Path) -> None:
    # 2 steps x strength 0.35 rounds down to no step (img2img's rule): the daemon's test settings hit
    # this, and the run once failed at the end of the stage.
    settings = {**SMALL, "pipeline": {**SMALL["pipeline"],
                                      "enhance": {"tile": 256, "overlap": 64, "steps": 2, "strength": 0.35}}}
    out = tmp_path / "run"
    assert generate(paths_with_models, "--save-stages", "--output", str(out), settings=settings) == 0
    record = json.loads((out / RUN_JSON).read_text())
    assert record["stages"]["enhanced"]["status"] == "skipped"
    assert "no denoising step" in record["stages"]["enhanced"]["reason"]
    assert record["stages"]["final"]["status"] == "done"
    assert not (out / STAGE_FILES["enhanced"]).exists()
    with Image.open(out / STAGE_FILES["final"]) as img:
        assert img.size == (480, 270)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--width", "1921"], "pipeline.txt2img.width: must be a multiple of 8"),
        (["--tile", "256", "--overlap", "256"], "pipeline.enhance.overlap: must be less than tile"),
        (["--strength", "1.5"], "pipeline.enhance.strength: must be <= 1.0"),
        (["--tile", "1024"], "pipeline.enhance.tile"),
    ],
)
def test_bad_sizes_are_precise_errors(paths_with_models: Paths, flags: list[str], needle: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert generate(paths_with_models, "--dry-run", *flags) == 2
    assert needle in capsys.readouterr().err


def test_missing_model_is_one_clear_error(paths_with_models: Paths, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.safetensors"
    code = generate(paths_with_models, "--model", str(missing), "--output", str(tmp_path / "r"))
    err = capsys.readouterr().err
    assert code == 4, err
    assert "models.base" in err and str(missing) in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # checked before any run directory is made


def test_dry_run_prints_plan_without_a_run_directory(paths_with_models: Paths, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert generate(paths_with_models, "--dry-run", "--json", "--output", str(tmp_path / "r")) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["seed"] == 1234 and plan["final_size"] == {"width": 480, "height": 270}
    assert not (tmp_path / "r").exists()


def test_old_run_directories_are_pruned_but_history_is_kept(paths_with_models: Paths) -> None:
    from ai_wallpaper.core.history import History

    settings = {**SMALL, "history": {"keep_runs": 1}, "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False}}}
    assert generate(paths_with_models, settings=settings) == 0
    assert generate(paths_with_models, "--seed", "5", settings=settings) == 0
    runs = History(paths_with_models.history_db).list_runs(10)
    assert len(runs) == 2 and all(r.status == "success" for r in runs)
    newest, oldest = runs
    assert newest.run_dir and Path(newest.run_dir).is_dir()
    assert oldest.run_dir and not Path(oldest.run_dir).exists()


def test_every_stage_records_its_quality_and_save_stages_writes_a_contact_sheet(
        paths_with_models: Paths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ai_wallpaper.render import contact_sheet as c

    out = tmp_path / "run"
    assert generate(paths_with_models, "--save-stages", "--output", str(out)) == 0
    stages = json.loads((out / RUN_JSON).read_text())["stages"]
    done = [name for name in STAGE_FILES if stages[name]["status"] == "done"]
    assert done == ["base", "upscaled", "enhanced", "final"]
    for name in done:
        figures = stages[name]["quality"]
        assert {"sharpness", "contrast", "colorfulness", "noise", "score"} <= set(figures), name
        assert all(isinstance(v, float) for v in figures.values())
        assert ("seam" in figures) == (name == "enhanced")  # 512x256 in 256 px tiles: three tiles
    assert "quality" not in stages["refined"]
    # one column per saved stage: thumbnails 240 high (128x64 and 512x256 -> 480 wide, 480x270 -> 427),
    # each column at least one crop cell wide; then the 100% crops under them
    with Image.open(out / c.CONTACT_SHEET) as img:
        sheet = np.asarray(img.convert("RGB"))
    widths = [max(480, c.CROP), max(480, c.CROP), max(480, c.CROP), max(427, c.CROP)]
    assert sheet.shape[:2] == (2 * c.MARGIN + c.THUMB_HEIGHT + c.THUMB_LINES * c.LINE_HEIGHT + c.GAP
                               + c.CROP + c.CROP_LINES * c.LINE_HEIGHT, 2 * c.MARGIN + sum(widths) + 3 * c.GAP)
    top = c.MARGIN + c.THUMB_HEIGHT + c.THUMB_LINES * c.LINE_HEIGHT + c.GAP
    left = c.MARGIN + sum(widths[:2]) + 2 * c.GAP  # the third column: enhanced
    with Image.open(out / STAGE_FILES["enhanced"]) as img:
        centre = np.asarray(img.convert("RGB"))[:, 96:416]  # 320 wide around x = 256; all 256 rows
    assert np.array_equal(sheet[top:top + 256, left:left + 320], centre)

    # `history show` prints every stage with its time, memory and figures
    capsys.readouterr()
    run_id = json.loads((out / RUN_JSON).read_text())["run_id"]
    assert main(["history", "show", run_id]) == 0
    shown = capsys.readouterr().out
    assert f"run {run_id}: success" in shown and f"contact sheet: {out / c.CONTACT_SHEET}" in shown
    rows = {line.split()[0]: line.split() for line in shown.splitlines()[-5:]}
    assert rows["refined"][:2] == ["refined", "skipped"]
    for name in done:
        row = rows[name]
        assert row[1] == "done" and float(row[2]) == pytest.approx(stages[name]["seconds"], abs=0.01)
        assert float(row[3]) == pytest.approx(stages[name]["peak_rss_mb"], abs=1) and row[4] == "-"  # no CUDA
        assert float(row[5]) == pytest.approx(stages[name]["quality"]["sharpness"], abs=0.1)
        assert (row[10] != "-") == (name == "enhanced")  # the seam column
    # the plain list still works beside it, and so does --json for one run
    assert main(["history", "-n", "5"]) == 0 and run_id in capsys.readouterr().out
    assert main(["history", "show", run_id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["runs"]
    assert len(shown) == 1 and shown[0]["stages"]["enhanced"]["quality"] == stages["enhanced"]["quality"]
    assert main(["history", "show", "20000101-000000-abcdef"]) == 1
    assert "no run '20000101-000000-abcdef' in the history" in capsys.readouterr().err
