"""Run folders are data, never instructions; pruning deletes only what the program made; files are private.

All through the CLI (`ai_wallpaper.cli.main`), on the built-in tiny model at small sizes.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from ai_wallpaper.cli import main
from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.run_dir import OWNER_MARKER, RUN_JSON, STAGE_FILES
from tests.render.test_pipeline import SMALL, write_settings

FAST: dict[str, Any] = {**SMALL, "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False}}}


def _marker_command(marker: Path) -> list[str]:
    return ["sh", "-c", f"touch {marker}"]


def _interrupted_run(paths: Paths, folder: Path, *, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A finished run turned back into one interrupted after the base stage."""
    cfg = write_settings(paths, settings or FAST)
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--save-stages", "--output", str(folder)]) == 0
    record: dict[str, Any] = json.loads((folder / RUN_JSON).read_text())
    for stage in ("upscaled", "final"):
        (folder / STAGE_FILES[stage]).unlink()
        del record["stages"][stage]
    record["status"] = "running"
    return record


def test_resume_never_runs_the_desktop_command_written_in_run_json(paths_with_models: Paths, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    folder = tmp_path / "copied-run"
    record = _interrupted_run(paths_with_models, folder)
    # The attacker's edit: a desktop command and a downloads switch in the copied folder's run.json.
    record["settings"]["desktop"] = {"setter": "command", "command": _marker_command(marker)}
    record["settings"]["models"]["allow_download"] = True
    record["settings"]["output"]["runs_dir"] = str(tmp_path / "elsewhere")
    (folder / RUN_JSON).write_text(json.dumps(record))
    cfg = write_settings(paths_with_models, FAST)  # the user's own config: desktop.setter none
    assert main(["generate", "--config", str(cfg), "--resume", str(folder)]) == 0  # wallpaper setting on
    assert not marker.exists()
    resumed = json.loads((folder / RUN_JSON).read_text())
    assert resumed["status"] == "success"
    assert not (tmp_path / "elsewhere").exists()


def test_resume_uses_the_recipe_from_run_json(paths_with_models: Paths, tmp_path: Path) -> None:
    """The image recipe (sizes, steps, models) still comes from the run folder, so it finishes as planned."""
    folder = tmp_path / "run"
    record = _interrupted_run(paths_with_models, folder)
    (folder / RUN_JSON).write_text(json.dumps(record))
    other = {**FAST, "output": {"width": 320, "height": 200}}
    cfg = write_settings(paths_with_models, other)
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--resume", str(folder)]) == 0
    from PIL import Image

    with Image.open(folder / STAGE_FILES["final"]) as img:
        assert img.size == (480, 270)  # the recorded output size, not today's 320x200


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda r: r.update(evil="x"), "evil: unknown key"),
    (lambda r: r.update(format=99), "format: 99 is not a format"),
    (lambda r: r.update(run_id="../../etc"), "is not a run id"),
    (lambda r: r["stages"]["base"].update(file="../../home/user/photo.jpg"), "base.file: must be '01_base.png'"),
    (lambda r: r["plan"].update(seed="1; rm -rf ~"), "plan: seed: must be an integer"),
    (lambda r: r["settings"].update(desktop={"setter": "command", "command": 5}), "desktop.command"),
    (lambda r: r.pop("plan"), "plan: missing"),
])
def test_resume_refuses_a_foreign_run_json_with_exit_3(paths_with_models: Paths, tmp_path: Path, edit: Any,
                                                        needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "run"
    record = _interrupted_run(paths_with_models, folder)
    edit(record)
    (folder / RUN_JSON).write_text(json.dumps(record))
    before = sorted(p.name for p in folder.iterdir())
    cfg = paths_with_models.config_dir / "settings.yaml"
    code = main(["generate", "--config", str(cfg), "--no-wallpaper", "--resume", str(folder)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert needle in err and "Traceback" not in err
    assert sorted(p.name for p in folder.iterdir()) == before  # refused before touching anything


@pytest.mark.parametrize("text", ["", "[1, 2]", "{\"run_id\": NaN}", "\udcff", "{" * 100_000])
def test_resume_refuses_malformed_json(paths: Paths, tmp_path: Path, text: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RUN_JSON).write_bytes(text.encode("utf-8", errors="surrogateescape"))
    assert main(["generate", "--no-wallpaper", "--resume", str(folder)]) == 3
    assert "Traceback" not in capsys.readouterr().err


def test_resume_of_a_missing_folder_is_a_usage_error(paths: Paths, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--no-wallpaper", "--resume", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("run_id", ["../escape", "a/b", "..", "x", "20261202-101010-abcdef/.."])
def test_hidden_run_id_accepts_only_the_pattern(paths: Paths, run_id: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--dry-run", "--run-id", run_id])
    assert exit_info.value.code == 2
    assert "is not a run id" in capsys.readouterr().err


def test_pruning_never_deletes_the_users_folder_or_files(paths_with_models: Paths, tmp_path: Path) -> None:
    settings = {**FAST, "history": {"keep_runs": 1}}
    cfg = write_settings(paths_with_models, settings)
    runs_dir = paths_with_models.runs_dir
    mine = runs_dir / "holiday-pictures"
    mine.mkdir(parents=True)
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--output", str(mine)]) == 0
    (mine / "holiday.jpg").write_bytes(b"\xff\xd8 my photo")
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--seed", "2"]) == 0
    # an auto-named run folder that the user later put a file into
    auto = Path(History(paths_with_models.history_db).list_runs(1)[0].run_dir or "")
    assert (auto / OWNER_MARKER).is_file()
    (auto / "notes.txt").write_text("keep me")
    for seed in ("3", "4"):
        assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--seed", seed]) == 0
    assert (mine / "holiday.jpg").read_bytes() == b"\xff\xd8 my photo"
    assert (mine / STAGE_FILES["final"]).is_file()  # an --output folder is never pruned, even under runs/
    assert (auto / "notes.txt").read_text() == "keep me"
    runs = History(paths_with_models.history_db).list_runs(10)
    assert len(runs) == 4 and all(r.status == "success" for r in runs)
    newest_folder = Path(runs[0].run_dir or "")
    third_folder = Path(runs[1].run_dir or "")
    assert newest_folder.is_dir()
    assert not third_folder.exists()  # ours, only our files: pruned
    assert sorted(p.name for p in runs_dir.iterdir()) == sorted(["holiday-pictures", auto.name, newest_folder.name])


def test_files_and_folders_are_private(paths_with_models: Paths, tmp_path: Path) -> None:
    home = {"latitude": 38.7223, "longitude": -9.1393}
    cfg = write_settings(paths_with_models, {**FAST, "weather": {"enabled": False, "location": home}})
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--save-stages"]) == 0
    run = Path(History(paths_with_models.history_db).list_runs(1)[0].run_dir or "")
    for path in (run, run.parent, paths_with_models.state_dir):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in (*run.iterdir(), paths_with_models.history_db):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    location = json.loads((run / RUN_JSON).read_text())["settings"]["weather"]["location"]
    assert (location["latitude"], location["longitude"]) == (38.72, -9.14)
