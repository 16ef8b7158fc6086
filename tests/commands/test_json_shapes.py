"""`--json` prints one JSON document per command, one shape per command family (README "JSON output"):
a family of many things an object holding the list under the family's name, a family of one thing that
thing's object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ai_wallpaper.cli import main
from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths

SETTINGS = ("models: {base: 'builtin:tiny', upscaler: 'builtin:tiny'}\nweather: {enabled: false}\n"
            "pipeline: {txt2img: {width: 128, height: 64}, enhance: {enabled: false}}\n"
            "output: {width: 480, height: 270}\n")
RUN_KEYS = {"run_id", "trigger", "status", "started_at", "finished_at", "duration_s", "theme", "favorite",
            "wallpaper", "error", "timings", "outputs"}


def _json(capsys: pytest.CaptureFixture[str], *argv: str, codes: tuple[int, ...] = (0,)) -> Any:
    assert main(list(argv)) in codes
    out = capsys.readouterr().out
    document = json.loads(out)  # one document: JSON lines would fail here
    assert isinstance(document, dict), f"{argv}: a bare {type(document).__name__}"
    return document


@pytest.fixture
def config(paths: Paths, tmp_path: Path) -> str:
    file = tmp_path / "settings.yaml"
    file.write_text(SETTINGS)
    history = History(paths.history_db)
    for run_id, status in (("run-a", "success"), ("run-b", "failed")):
        history.start_run(run_id, trigger="manual", plan={"theme": {"key": "lake"}}, run_dir=None)
        history.finish_run(run_id, status=status, error="boom" if status == "failed" else None)  # type: ignore[arg-type]
    return str(file)


def test_list_families_hold_their_list_under_their_name(capsys: pytest.CaptureFixture[str], config: str) -> None:
    runs = _json(capsys, "history", "--json", "--config", config)
    assert list(runs) == ["runs"] and [r["run_id"] for r in runs["runs"]] == ["run-b", "run-a"]
    assert all(set(r) == RUN_KEYS for r in runs["runs"]) and runs["runs"][0]["error"] == "boom"
    assert _json(capsys, "history", "--json", "-n", "0", "--config", config) == {"runs": []}
    themes = _json(capsys, "themes", "list", "--json", "--config", config)
    assert isinstance(themes["themes"], list) and themes["themes"] and {"key", "category"} <= set(themes["themes"][0])
    only = _json(capsys, "themes", "list", "--category", "landscapes", "--json", "--config", config)
    assert {t["category"] for t in only["themes"]} == {"landscapes"}
    loras = _json(capsys, "loras", "list", "--json", "--config", config)
    assert isinstance(loras["loras"], list) and "file" in loras


def test_single_thing_families_print_the_thing(capsys: pytest.CaptureFixture[str], config: str) -> None:
    plan = _json(capsys, "plan", "--json", "--seed", "7", "--config", config)
    dry = _json(capsys, "generate", "--dry-run", "--json", "--seed", "7", "--config", config)
    assert set(plan) == set(dry) and plan["seed"] == dry["seed"] == 7  # one family, one shape
    report = _json(capsys, "doctor", "--json", "--config", config, codes=(0, 1))
    assert report["backend"] == "local" and isinstance(report["problems"], list)
    status = _json(capsys, "status", "--json", "--config", config)
    assert set(status) == {"daemon", "current_run", "last_run", "pause"}
    assert status["daemon"]["running"] is False and status["current_run"] is None and status["pause"] is None
    assert main(["pause", "1h", "--config", config]) == 0 and "paused until" in capsys.readouterr().out
    assert "paused until" in _json(capsys, "status", "--json", "--config", config)["pause"]
    assert status["last_run"]["run_id"] == "run-b" and set(status["last_run"]) == RUN_KEYS
