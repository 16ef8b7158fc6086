"""render.backend invokeai against a real InvokeAI 6.14.2 server (tests/invokeai_server.py) on
127.0.0.1 with tiny SDXL models: a whole `generate --backend invokeai --save-stages`, the LoRA stack
on the server, `doctor`, resume after the server died mid-run, SIGTERM cancelling the queue item, a
wrong model name and a garbage answer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from ai_wallpaper.cli import main
from ai_wallpaper.core.errors import ExitCode
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.run_dir import RUN_JSON, STAGE_FILES
from tests.invokeai_server import InvokeAIServer
from tests.service.test_daemon import wait_for

TOKEN = "tok-never-recorded-42"


def remote_settings(server: InvokeAIServer, tmp_path: Path, **over: Any) -> dict[str, Any]:
    lora_dir = tmp_path / "loras"
    lora_dir.mkdir(exist_ok=True)
    shutil.copy(server.model_paths["tiny-lora"], lora_dir / "tiny-lora.safetensors")
    library = tmp_path / "loras.yaml"
    library.write_text(yaml.safe_dump({"loras": {"tiny-lora": {
        "file": "tiny-lora.safetensors", "type": "style", "weight_range": [0.9, 0.9], "chance": 1.0,
        "trigger_words": ["tinystyle"]}}}))
    settings: dict[str, Any] = {
        "seed": 77, "prompt": "a lighthouse on a cliff at dusk",
        # Local paths for the planner's tokenizer; the server's names for the render.
        "models": {"base": str(server.model_paths["tiny-sdxl"]),
                   "refiner": str(server.model_paths["tiny-sdxl-refiner"]), "upscaler": "builtin:tiny",
                   "device": "cpu"},
        "render": {"backend": "invokeai"},
        "invokeai": {"url": server.url, "poll_seconds": 0.1,
                     "models": {"base": "tiny-sdxl", "refiner": "tiny-sdxl-refiner", "upscaler": "tiny-esrgan-x4"}},
        "pipeline": {"txt2img": {"width": 256, "height": 128, "steps": 4},
                     "enhance": {"tile": 256, "overlap": 64, "steps": 4, "strength": 0.5}},
        "output": {"width": 960, "height": 540, "upscale_factor": 4},
        "loras": {"file": str(library), "directory": str(lora_dir)},
        "weather": {"enabled": False}, "desktop": {"setter": "none"},
    }
    for key, value in over.items():
        settings[key] = {**settings.get(key, {}), **value} if isinstance(value, dict) else value
    return settings


def write(paths: Paths, settings: dict[str, Any]) -> Path:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    file = paths.config_dir / "settings.yaml"
    file.write_text(yaml.safe_dump(settings))
    return file


def generate(cfg: Path, out: Path, *extra: str) -> int:
    return main(["generate", "--config", str(cfg), "--no-wallpaper", "--log-format", "json", "--save-stages",
                 "--output", str(out), *extra])


def test_a_remote_run_keeps_the_local_run_contract(invokeai_server: InvokeAIServer, paths: Paths, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AI_WALLPAPER_INVOKEAI_TOKEN", TOKEN)
    cfg = write(paths, remote_settings(invokeai_server, tmp_path))
    out = tmp_path / "run"
    assert generate(cfg, out) == 0
    sizes = {"base": (256, 128), "refined": (256, 128), "upscaled": (1024, 512), "enhanced": (1024, 512),
             "final": (960, 540)}
    for stage, size in sizes.items():
        with Image.open(out / STAGE_FILES[stage]) as img:
            assert img.size == size, stage
    text = (out / RUN_JSON).read_text()
    record = json.loads(text)
    assert record["status"] == "success"
    backend = record["models"]["backend"]
    assert backend == {"name": "invokeai", "url": invokeai_server.url, "version": "6.14.2", "queue_id": "default"}
    assert record["models"]["base"]["key"] == invokeai_server.models["tiny-sdxl"].key
    assert [lora["name"] for lora in record["models"]["loras"]] == ["tiny-lora"]
    stages = record["stages"]
    items = {stages[s]["remote"]["item_id"] for s in ("base", "refined", "upscaled", "enhanced")}
    assert len(items) == 3  # base and refiner are one graph; upscale and enhance one each
    graph = stages["base"]["remote"]["graph"]
    kinds = {n["type"] for n in graph["nodes"].values()}
    assert {"sdxl_model_loader", "sdxl_lora_collection_loader", "sdxl_refiner_model_loader"} <= kinds
    assert stages["enhanced"]["remote"]["graph"]["nodes"]["denoise"]["type"] == "tiled_multi_diffusion_denoise_latents"
    assert stages["base"]["loras"][0]["name"] == "tiny-lora" and stages["refined"]["loras"] == []
    assert "tinystyle" in stages["base"]["prompt"] and "tinystyle" not in stages["refined"]["prompt"]
    assert all(stages[s]["seconds"] > 0 for s in ("base", "upscaled", "enhanced", "final"))
    assert "quality" in stages["enhanced"] and stages["final"].get("remote") is None  # downsampled here
    captured = capfd.readouterr()
    assert TOKEN not in text and TOKEN not in captured.out + captured.err


def test_the_lora_stack_changes_the_server_image(invokeai_server: InvokeAIServer, paths: Paths,
                                                 tmp_path: Path) -> None:
    images = []
    for enabled in (True, False):
        cfg = write(paths, remote_settings(invokeai_server, tmp_path, loras={"enabled": enabled},
                                           pipeline={"enhance": {"enabled": False}}))
        out = tmp_path / f"run-{enabled}"
        assert generate(cfg, out, "--refiner", "none") == 0
        with Image.open(out / STAGE_FILES["base"]) as img:
            images.append(np.asarray(img.convert("RGB")).astype(np.int16))
    assert np.abs(images[0] - images[1]).mean() > 0.5


def test_doctor_reports_the_server_and_every_missing_model(invokeai_server: InvokeAIServer, paths: Paths,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(paths, remote_settings(invokeai_server, tmp_path))
    assert main(["doctor", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"invokeai {invokeai_server.url} (InvokeAI 6.14.2" in out and "tiny-sdxl-refiner" in out
    assert "enhance:    on the server" in out
    bad = write(paths, remote_settings(invokeai_server, tmp_path, invokeai={"models": {"base": "no-such-xl",
                                                                                       "upscaler": "nope"}}))
    assert main(["doctor", "--config", str(bad)]) == ExitCode.FAILURE
    out = capsys.readouterr().out
    assert "invokeai.models.base: the server has no sdxl main model named 'no-such-xl' (it has: tiny-sdxl)" in out
    assert "invokeai.models.upscaler" in out


def test_a_wrong_model_name_fails_before_any_stage(invokeai_server: InvokeAIServer, paths: Paths,
                                                   tmp_path: Path) -> None:
    cfg = write(paths, remote_settings(invokeai_server, tmp_path, invokeai={"models": {"base": "sd_xl_typo"}}))
    out = tmp_path / "run"
    assert generate(cfg, out) == ExitCode.MODEL
    record = json.loads((out / RUN_JSON).read_text())
    assert record["status"] == "failed" and "sd_xl_typo" in record["error"] and record["stages"] == {}


def test_a_garbage_server_fails_the_run_with_exit_5(paths: Paths, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import threading
    from http.server import ThreadingHTTPServer

    from tests.render.test_invokeai_client import Stub

    Stub.answers, Stub.seen, Stub.mode = {"/api/v1/app/version": (200, b"<html>not invoke</html>")}, [], "normal"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = {"seed": 1, "prompt": "x", "models": {"base": "builtin:tiny", "upscaler": "builtin:tiny"},
                "render": {"backend": "invokeai"},
                "invokeai": {"url": f"http://127.0.0.1:{server.server_address[1]}"},
                "pipeline": {"txt2img": {"width": 128, "height": 64, "steps": 2}, "enhance": {"enabled": False}},
                "output": {"width": 480, "height": 270}, "weather": {"enabled": False}}
    try:
        assert generate(write(paths, settings), tmp_path / "run") == ExitCode.RUN
    finally:
        server.shutdown()
        server.server_close()
    assert "answered something that is not JSON" in capsys.readouterr().err
    record = json.loads((tmp_path / "run" / RUN_JSON).read_text())
    assert record["status"] == "failed" and record["stages"] == {}


def _spawn(cfg: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ai_wallpaper", "generate", "--config", str(cfg),
                             "--no-wallpaper", "--save-stages", "--log-format", "json", "--output", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())


def _stages(out: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((out / RUN_JSON).read_text())["stages"])
    except (OSError, ValueError, KeyError):
        return {}


def test_a_server_that_dies_mid_run_fails_it_and_resume_finishes_it(invokeai_server: InvokeAIServer,
                                                                    paths: Paths, tmp_path: Path) -> None:
    slow = {"enhance": {"tile": 256, "overlap": 64, "steps": 12, "strength": 1.0}}
    cfg = write(paths, remote_settings(invokeai_server, tmp_path, pipeline=slow))
    out = tmp_path / "run"
    proc = _spawn(cfg, out)
    try:
        wait_for(lambda: "upscaled" in _stages(out), 120, "the upscaled stage")
        base_bytes = (out / STAGE_FILES["base"]).read_bytes()
        invokeai_server.kill()  # mid-enhancement
        log = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        invokeai_server.start()
    assert proc.returncode == ExitCode.RUN, log[-2000:]
    record = json.loads((out / RUN_JSON).read_text())
    assert record["status"] == "failed" and invokeai_server.url in record["error"]
    assert "enhanced" not in record["stages"]
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--save-stages", "--resume", str(out)]) == 0
    record = json.loads((out / RUN_JSON).read_text())
    assert record["status"] == "success" and record["stages"]["enhanced"]["status"] == "done"
    assert (out / STAGE_FILES["base"]).read_bytes() == base_bytes  # the done stages were not redone


def test_sigterm_cancels_the_queue_item_on_the_server(invokeai_server: InvokeAIServer, paths: Paths,
                                                      tmp_path: Path) -> None:
    long_base = {"txt2img": {"width": 256, "height": 128, "steps": 400}}
    cfg = write(paths, remote_settings(invokeai_server, tmp_path, pipeline=long_base))
    out = tmp_path / "run"
    proc = _spawn(cfg, out, "--refiner", "none")
    try:
        current = wait_for(lambda: _in_progress(invokeai_server), 120, "a queue item in progress")
        proc.send_signal(signal.SIGTERM)
        log = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED, log[-2000:]
    item = wait_for(lambda: (i := invokeai_server.get(f"/api/v1/queue/default/i/{current}"))["status"] != "in_progress"
                     and i, 30, "the item to stop")
    assert item["status"] == "canceled"
    assert json.loads((out / RUN_JSON).read_text())["status"] == "cancelled"


def _in_progress(server: InvokeAIServer) -> int | None:
    current = server.get("/api/v1/queue/default/current")
    return current["item_id"] if isinstance(current, dict) and current.get("status") == "in_progress" else None
