"""Every CLI input gets a clean one-line answer with the README's exit code, never a traceback; and
`config validate` fails whenever `plan` would (it reports everything the later commands refuse)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from ai_wallpaper.cli import main
from ai_wallpaper.config.desktop_settings import DesktopSetter
from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.desktop.setters import SETTERS
from ai_wallpaper.service.lock import DaemonLock
from tests.render.test_pipeline import SMALL, write_settings

FAST: dict[str, Any] = {**SMALL, "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False}}}
IMPOSSIBLE: dict[str, Any] = {**SMALL, "pipeline": {**SMALL["pipeline"], "txt2img": {"width": 4096, "height": 4096},
                                                    "enhance": {"tile": 64, "overlap": 0}},
                              "output": {"width": 16384, "height": 16384}}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def _case_dirs(tmp: Path) -> dict[str, Path]:
    afile = tmp / "a-file.txt"
    afile.write_text("x")
    full = tmp / "full"
    full.mkdir()
    (full / "mine.txt").write_text("x")
    no_record = tmp / "no-record"
    no_record.mkdir()
    broken = tmp / "broken-record"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    foreign = tmp / "foreign-record"
    foreign.mkdir()
    (foreign / "run.json").write_text(json.dumps({"hello": "world"}))
    return {"file": afile, "full": full, "no_record": no_record, "broken": broken, "foreign": foreign}


CASES: list[tuple[str, Callable[[Path, dict[str, Path]], list[str]], int]] = [
    ("bad flag value", lambda c, d: ["generate", "--config", str(c), "--steps", "abc"], 2),
    ("negative seed", lambda c, d: ["generate", "--config", str(c), "--dry-run", "--seed", "-1"], 2),
    ("absurd width", lambda c, d: ["generate", "--config", str(c), "--dry-run", "--width", "99999999"], 2),
    ("absurd strength", lambda c, d: ["generate", "--config", str(c), "--dry-run", "--strength", "1e308"], 2),
    ("unknown theme", lambda c, d: ["plan", "--config", str(c), "--prompt", "x", "--theme", "no-such-theme"], 2),
    ("resume missing folder", lambda c, d: ["generate", "--config", str(c), "--resume", str(d["full"] / "nope")], 2),
    ("output is a file", lambda c, d: ["generate", "--config", str(c), "--output", str(d["file"])], 2),
    ("output under a file", lambda c, d: ["generate", "--config", str(c), "--output", str(d["file"] / "x")], 2),
    ("output not empty", lambda c, d: ["generate", "--config", str(c), "--output", str(d["full"])], 2),
    ("resume without run.json", lambda c, d: ["generate", "--config", str(c), "--resume", str(d["no_record"])], 3),
    ("resume malformed run.json", lambda c, d: ["generate", "--config", str(c), "--resume", str(d["broken"])], 3),
    ("resume foreign run.json", lambda c, d: ["generate", "--config", str(c), "--resume", str(d["foreign"])], 3),
    ("missing --config", lambda c, d: ["plan", "--config", str(d["full"] / "settings.yaml")], 3),
    ("missing --config other name", lambda c, d: ["plan", "--config", str(d["full"] / "mine.yaml")], 3),
    ("validate finds problems", lambda c, d: ["config", "validate", "--config", str(d["file"])], 1),
]


@pytest.mark.parametrize(("name", "argv", "code"), CASES, ids=[c[0] for c in CASES])
def test_cli_inputs_give_one_clean_error(paths: Paths, tmp_path: Path, name: str, argv: Any, code: int,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_settings(paths, FAST)
    got, err = _run(argv(cfg, _case_dirs(tmp_path)), capsys)
    assert got == code, f"{name}: exit {got}, want {code}\n{err}"
    assert "Traceback" not in err and err.strip(), name
    assert not list(paths.runs_dir.glob("*")) if paths.runs_dir.exists() else True  # nothing was started


def test_config_model_desktop_lock_codes(paths_with_models: Paths, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    broken = paths_with_models.config_dir / "broken.yaml"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text("pipeline:\n  txt2img: [1, 2]\n")
    assert _run(["plan", "--config", str(broken)], capsys)[0] == 3
    cfg = write_settings(paths_with_models, {**FAST, "models": {**FAST["models"], "upscaler": "/nope/x.pth"}})
    code, err = _run(["generate", "--config", str(cfg), "--no-wallpaper"], capsys)
    assert code == 4 and "models.upscaler" in err
    fails = {**FAST, "desktop": {"setter": "command", "command": ["false", "{path}"]}}
    cfg = write_settings(paths_with_models, fails)
    code, err = _run(["generate", "--config", str(cfg)], capsys)
    assert code == 6, err
    row = History(paths_with_models.history_db).list_runs(1)[0]
    assert row.status == "failed" and row.error and "setting the wallpaper failed" in row.error
    with DaemonLock(paths_with_models.daemon_lock, retry_s=0):
        code, err = _run(["daemon", "--config", str(cfg)], capsys)
    assert code == 7 and "already running" in err


def test_impossible_work_is_refused_by_plan_with_numbers(paths: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_settings(paths, IMPOSSIBLE)
    code, err = _run(["plan", "--config", str(cfg), "--no-weather"], capsys)
    assert code == 3, err
    assert "65536 tiles per pass (limit 2048)" in err and "GiB" in err
    code, err = _run(["generate", "--config", str(cfg), "--no-wallpaper"], capsys)
    assert code == 3 and "65536 tiles" in err
    assert not paths.runs_dir.exists()


def test_closed_stdout_records_the_run_and_prints_one_line(paths_with_models: Paths, tmp_path: Path) -> None:
    cfg = write_settings(paths_with_models, FAST)
    argv = [sys.executable, "-m", "ai_wallpaper", "generate", "--config", str(cfg), "--no-wallpaper",
            "--log-format", "json", "--log-level", "error"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `generate ... | head -0`: nobody reads stdout
    try:
        proc = subprocess.run(argv, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300,
                              env=os.environ, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
    assert "standard output was closed" in proc.stderr
    row = History(paths_with_models.history_db).list_runs(1)[0]
    assert row.status == "success"  # the work was done and recorded before anything was printed


def test_setter_vocabulary_matches_the_setters() -> None:
    assert set(get_args(DesktopSetter)) == {"auto", "none", *SETTERS}


# --- config validate reports everything plan would refuse ------------------------------------------


def _corpus(tmp: Path) -> dict[str, dict[str, Any]]:
    themes = tmp / "themes.yaml"
    themes.write_text(yaml.safe_dump({
        "version": 1, "categories": {"c": {"name": "C"}},
        "themes": {"t": {"name": "T", "category": "c", "templates": ["a quiet lake"],
                         "lora_hints": {"required": ["ghost"]}}}}))
    loras = tmp / "loras.yaml"
    loras.write_text(yaml.safe_dump({"loras": {"gone": {"file": "gone.safetensors"}}}))
    return {
        "impossible work": IMPOSSIBLE,
        "missing base model": {**FAST, "models": {**FAST["models"], "base": str(tmp / "nope.safetensors")}},
        "missing upscaler": {**FAST, "models": {**FAST["models"], "upscaler": "nope.pth"}},
        "theme requires a LoRA not in the library": {**FAST, "prompt": None, "themes": {"file": str(themes)}},
        "enabled LoRA without its file": {**FAST, "loras": {"file": str(loras), "directory": str(tmp)}},
        "setter typo": {**FAST, "desktop": {"setter": "gnom"}},
        "unknown time zone": {**FAST, "schedule": {"timezone": "Mars/Olympus_Mons"}},
        "bad cron": {**FAST, "schedule": {"cron": "61 * * * *"}},
        "tile larger than the image": {**FAST, "pipeline": {**FAST["pipeline"], "enhance": {"tile": 4096}}},
    }


def test_validate_fails_whenever_plan_does(paths_with_models: Paths, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    for name, settings in _corpus(tmp_path).items():
        cfg = write_settings(paths_with_models, settings)
        plan_code, plan_err = _run(["plan", "--config", str(cfg), "--no-weather"], capsys)
        validate_code = main(["config", "validate", "--config", str(cfg)])
        out = capsys.readouterr().out
        assert "Traceback" not in plan_err + out, name
        if plan_code != 0:
            assert validate_code != 0, f"{name}: plan refused (exit {plan_code}) but validate passed:\n{out}"
        assert validate_code == 1, f"{name}: validate should report it:\n{out}"


def test_validate_names_the_missing_models_all_at_once(paths_with_models: Paths, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    settings = {**FAST, "models": {"base": str(tmp_path / "a.safetensors"), "upscaler": "b.pth",
                                   "refiner": "someone/not-cached"}}
    cfg = write_settings(paths_with_models, settings)
    assert main(["config", "validate", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "models.base" in out and "models.upscaler" in out and "models.refiner" in out


def test_valid_offline_config_validates(paths_with_models: Paths, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_settings(paths_with_models, FAST)
    assert main(["config", "validate", "--config", str(cfg)]) == 0, capsys.readouterr().out
