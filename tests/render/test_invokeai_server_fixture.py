"""The `invokeai_server` fixture against a real InvokeAI 6.14.2 (tests/invokeai_server.py): it answers,
the four tiny models are installed under their stable names with the right base and type, it comes back
after a crash, and it renders a txt2img graph on the tiny SDXL."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.invokeai_server import MODELS, InvokeAIServer


def test_it_is_the_pinned_version(invokeai_server: InvokeAIServer) -> None:
    assert invokeai_server.get("/api/v1/app/version")["version"] == "6.14.2"
    assert invokeai_server.log_path.is_file()


def test_the_four_models_are_listed_with_their_base_and_type(invokeai_server: InvokeAIServer) -> None:
    listed = {m["name"]: m for m in invokeai_server.get("/api/v2/models/")["models"]}
    assert set(listed) == set(MODELS)
    for name, (_, base, kind) in MODELS.items():
        record, model = listed[name], invokeai_server.models[name]
        assert (record["base"], record["type"], record["key"], record["hash"]) == (base, kind, model.key, model.hash)
        assert Path(record["path"]) == model.path == invokeai_server.model_paths[name]
        assert model.path.exists() and model.hash.startswith("blake3:")
    mains = invokeai_server.get("/api/v2/models/", base_models="sdxl", model_type="main")["models"]
    assert [m["name"] for m in mains] == ["tiny-sdxl"]


def test_it_comes_back_after_a_kill(invokeai_server: InvokeAIServer) -> None:
    invokeai_server.kill()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{invokeai_server.url}/api/v1/app/version", timeout=5)
    invokeai_server.start()
    assert invokeai_server.get("/api/v1/app/version")["version"] == "6.14.2"
    listed = {m["name"]: m["key"] for m in invokeai_server.get("/api/v2/models/")["models"]}
    assert listed == {name: model.key for name, model in invokeai_server.models.items()}


def _txt2img(model: dict[str, str], width: int, height: int) -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
    def prompt(node_id: str, text: str) -> dict[str, Any]:
        return {"type": "sdxl_compel_prompt", "id": node_id, "prompt": text, "style": text,
                "original_width": width, "original_height": height, "target_width": width, "target_height": height}

    nodes = {
        "loader": {"type": "sdxl_model_loader", "id": "loader", "model": model},
        "pos": prompt("pos", "a lighthouse at dusk"),
        "neg": prompt("neg", ""),
        "noise": {"type": "noise", "id": "noise", "seed": 7, "width": width, "height": height},
        "denoise": {"type": "denoise_latents", "id": "denoise", "steps": 3, "cfg_scale": 5.0, "scheduler": "euler"},
        "l2i": {"type": "l2i", "id": "l2i", "is_intermediate": False},
    }
    edges = [("loader", "clip", "pos", "clip"), ("loader", "clip2", "pos", "clip2"),
             ("loader", "clip", "neg", "clip"), ("loader", "clip2", "neg", "clip2"),
             ("loader", "unet", "denoise", "unet"), ("pos", "conditioning", "denoise", "positive_conditioning"),
             ("neg", "conditioning", "denoise", "negative_conditioning"), ("noise", "noise", "denoise", "noise"),
             ("denoise", "latents", "l2i", "latents"), ("loader", "vae", "l2i", "vae")]
    return nodes, edges


def test_a_txt2img_graph_renders_on_the_tiny_sdxl(invokeai_server: InvokeAIServer) -> None:
    nodes, edges = _txt2img(invokeai_server.models["tiny-sdxl"].identifier(), 256, 128)
    item = invokeai_server.run_graph(nodes, edges)
    assert item["status"] == "completed", (item.get("error_type"), item.get("error_message"))
    session = item["session"]
    result = session["results"][session["source_prepared_mapping"]["l2i"][0]]
    assert (result["type"], result["width"], result["height"]) == ("image_output", 256, 128)
    response = requests.get(f"{invokeai_server.url}/api/v1/images/i/{result['image']['image_name']}/full", timeout=30)
    response.raise_for_status()
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (256, 128)
