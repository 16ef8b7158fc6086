"""The InvokeAI client and graph builders against a real HTTP server on 127.0.0.1 that answers like a
broken or hostile InvokeAI (down, garbage, wrong shapes, refusals, floods, trickles). The real
server's tests are in test_invokeai_backend.py."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ai_wallpaper.config.backend_settings import InvokeAISettings, is_private_channel
from ai_wallpaper.config.settings import settings_from_dict
from ai_wallpaper.config.vocabulary import SCHEDULER_NAMES
from ai_wallpaper.core.errors import ConfigError, ExitCode, ModelError, RunError
from ai_wallpaper.render.invokeai import graphs, server_models
from ai_wallpaper.render.invokeai.client import InvokeAIClient, read_token
from ai_wallpaper.render.stages.refine import RefineConfig
from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig

TOKEN = "s3cret-token-value"


class Stub(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}
    seen: ClassVar[list[tuple[str, str, str | None]]] = []
    mode: ClassVar[str] = "normal"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        Stub.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if Stub.mode == "trickle":
            self.send_response(200)
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.2)
            return
        if Stub.mode == "flood":
            self.send_response(200)
            self.end_headers()
            chunk = b"x" * 2**20
            for _ in range(80):
                self.wfile.write(chunk)
            return
        status, body = Stub.answers.get(self.path.split("?")[0], (404, b'{"detail":"Not Found"}'))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture
def stub() -> Iterator[str]:
    Stub.answers, Stub.seen, Stub.mode = {}, [], "normal"
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def client(url: str, token: str | None = None, read_timeout: float = 5.0) -> InvokeAIClient:
    return InvokeAIClient(InvokeAISettings(url=url, read_timeout=read_timeout), token)


def answer(path: str, data: Any, status: int = 200) -> None:
    Stub.answers[path] = (status, data if isinstance(data, bytes) else json.dumps(data).encode())


def test_a_server_that_is_down_is_one_clear_run_error() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RunError) as err:
        client(f"http://127.0.0.1:{port}").version()
    assert err.value.exit_code == ExitCode.RUN
    assert "is not reachable (connection refused)" in err.value.message


@pytest.mark.parametrize(("body", "needle"), [
    (b"<html>hello</html>", "not JSON"),
    ({"versio": "6"}, "without a valid 'version'"),
    ({"version": 6}, "without a valid 'version'"),
    ([1, 2], "without a valid 'version'"),
])
def test_garbage_answers_are_named(stub: str, body: Any, needle: str) -> None:
    answer("/api/v1/app/version", body)
    with pytest.raises(RunError, match=needle):
        client(stub).version()


def test_refusals_name_the_token_and_never_show_it(stub: str) -> None:
    answer("/api/v1/app/version", {"detail": "Not authenticated"}, status=401)
    with pytest.raises(RunError) as err:
        client(stub, TOKEN).version()
    assert "access token is missing or wrong" in str(err.value)
    assert TOKEN not in str(err.value)
    assert Stub.seen[-1][2] == f"Bearer {TOKEN}"  # sent, in the header only
    assert TOKEN not in Stub.seen[-1][1]


def test_http_errors_carry_the_server_detail(stub: str) -> None:
    answer("/api/v1/queue/default/enqueue_batch", {"detail": "node type 'x' unknown"}, status=422)
    with pytest.raises(RunError, match="HTTP 422: node type 'x' unknown"):
        client(stub).enqueue({"id": "g", "nodes": {}, "edges": []})


@pytest.mark.parametrize(("mode", "needle"), [("trickle", "did not answer"), ("flood", "more than 64 MiB")])
def test_a_trickling_or_flooding_server_cannot_hang_or_fill_memory(stub: str, mode: str, needle: str) -> None:
    Stub.mode = mode
    started = time.monotonic()
    with pytest.raises(RunError, match=needle):
        client(stub, read_timeout=1.0).version()
    assert time.monotonic() - started < 5.0


def test_an_enqueue_must_answer_one_item(stub: str) -> None:
    answer("/api/v1/queue/default/enqueue_batch", {"item_ids": [1, 2], "batch": {"batch_id": "b"}})
    with pytest.raises(RunError, match=r"queued \[1, 2\] for one graph"):
        client(stub).enqueue({"id": "g", "nodes": {}, "edges": []})
    answer("/api/v1/queue/default/enqueue_batch", {"item_ids": [7], "batch": {"batch_id": "b-1"}})
    queued = client(stub).enqueue({"id": "g", "nodes": {}, "edges": []})
    assert (queued.item_id, queued.batch_id) == (7, "b-1")


def test_the_token_comes_from_a_private_file_or_the_environment(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_WALLPAPER_INVOKEAI_TOKEN", "from-env")
    assert read_token(InvokeAISettings(), tmp_path) == "from-env"
    monkeypatch.delenv("AI_WALLPAPER_INVOKEAI_TOKEN")
    assert read_token(InvokeAISettings(), tmp_path) is None
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    os.chmod(file, 0o644)
    with pytest.raises(ConfigError) as err:
        read_token(InvokeAISettings(token_file="token"), tmp_path)
    assert "can be read by others (mode 0644)" in str(err.value) and f"chmod 600 {file}" in str(err.value)
    assert TOKEN not in str(err.value)
    os.chmod(file, 0o600)
    assert read_token(InvokeAISettings(token_file=str(file)), tmp_path) == TOKEN


@pytest.mark.parametrize(("url", "needle"), [
    ("ftp://gpu:9090", "must be an http:// or https:// URL"),
    ("http://user:pw@gpu:9090", "must not carry a user or password"),
    ("http://gpu:9090/api", "must be the server's address only"),
    ("http://gpu:99999", "is not a valid URL"),
    ("gpu:9090", "must be an http:// or https:// URL"),
])
def test_config_validate_checks_the_server_url(url: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict({"invokeai": {"url": url}})
    shown = url.replace("user:pw@", "***@")
    assert f"invokeai.url: {shown!r} {needle}" in str(err.value)
    assert "pw" not in str(err.value)  # a credential in the URL is never echoed (the daemon logs this)


def test_plain_http_is_private_only_to_this_machine() -> None:
    assert is_private_channel("http://127.0.0.1:9090") and is_private_channel("https://gpu:9090")
    assert not is_private_channel("http://192.168.1.20:9090")
    settings_from_dict({"invokeai": {"url": "http://192.168.1.20:9090"}})  # allowed (a warning at run time)


# --- graphs and model matching (pure) -----------------------------------------------------------

def test_every_sampler_has_an_invokeai_name() -> None:
    assert set(graphs.SCHEDULERS) == set(SCHEDULER_NAMES)


def _t2i(seed: int = 2**40 + 5) -> Txt2ImgConfig:
    return Txt2ImgConfig(prompt="a (red:1.3) boat", negative_prompt="blurry", seed=seed, width=256, height=128,
                         steps=10, guidance_scale=7.0, scheduler="dpmpp_2m_karras", denoising_end=0.8,
                         vae_tiling="auto")


def test_the_base_graph_hands_noisy_latents_to_the_refiner_at_the_switch_point() -> None:
    refine = RefineConfig(prompt="a red boat", negative_prompt="blurry", seed=1, steps=10, high_noise_frac=0.8,
                          guidance_scale=7.0, scheduler="dpmpp_2m_karras")
    model = {"key": "k", "hash": "h", "name": "base", "base": "sdxl", "type": "main"}
    lora = graphs.LoraRef({**model, "key": "l", "type": "lora"}, 0.7)
    g = graphs.base_graph(_t2i(), model, (lora,), tiled_vae=False, refiner={**model, "key": "r"}, refine=refine)
    nodes, edges = g.nodes, {(e["source"]["node_id"], e["destination"]["node_id"], e["destination"]["field"])
                             for e in g.edges}
    assert nodes["denoise"]["denoising_end"] == 0.8 and nodes["refiner_denoise"]["denoising_start"] == 0.8
    assert nodes["noise"]["seed"] == 5  # 2**40 + 5 folded into InvokeAI's uint32 seed
    assert nodes["positive"]["prompt"] == "a (red)1.3 boat"  # A1111 weighting in compel's syntax
    assert ("denoise", "refiner_denoise", "latents") in edges
    assert not any(dest == "refiner_denoise" and field == "noise" for _, dest, field in edges)
    assert {("loras", "denoise", "unet"), ("loras", "positive", "clip2")} <= edges
    assert not any(src == "loras" and dest.startswith("refiner") for src, dest, _ in edges)  # no LoRA on the refiner
    assert nodes["loras"]["loras"] == [{"lora": lora.model, "weight": 0.7}]
    assert all(n["is_intermediate"] for n in nodes.values())


def _catalogue(stub_url: str, records: dict[str, list[dict[str, Any]]]) -> InvokeAIClient:
    c = client(stub_url)
    c.models = lambda kind: records.get(kind, [])  # type: ignore[method-assign]
    return c


def test_every_missing_model_is_reported_at_once_with_what_the_server_has(stub: str) -> None:
    main = [{"key": "k1", "name": "juggernaut-xl", "base": "sdxl", "type": "main", "hash": "blake3:1"}]
    settings = settings_from_dict({"models": {"base": "stabilityai/stable-diffusion-xl-base-1.0",
                                              "refiner": "refiner-1.0", "upscaler": "4x-UltraSharp.pth"}})
    with pytest.raises(ModelError) as err:
        server_models.resolve(_catalogue(stub, {"main": main}), settings, ())
    text = str(err.value)
    assert "invokeai.models.base: the server has no sdxl main model named 'stable-diffusion-xl-base-1.0'" in text
    assert "(it has: juggernaut-xl)" in text
    assert "invokeai.models.refiner" in text and "invokeai.models.upscaler" in text and "'4x-UltraSharp'" in text
    named = settings_from_dict({"models": {"refiner": None}, "invokeai": {"models": {"base": "JUGGERNAUT-XL",
                                                                                     "upscaler": "k9"}}})
    ups = [{"key": "k9", "name": "x", "base": "any", "type": "spandrel_image_to_image"}]
    found = server_models.resolve(_catalogue(stub, {"main": main, "spandrel_image_to_image": ups}), named, ())
    assert found.base["key"] == "k1" and found.upscaler is not None and found.upscaler["key"] == "k9"
    assert found.refiner is None


def test_resume_takes_the_server_from_todays_config_never_from_the_run_record() -> None:
    recorded = settings_from_dict({"render": {"backend": "invokeai"},
                                   "invokeai": {"url": "http://10.0.0.66:9090", "token_file": "/tmp/evil",
                                                "models": {"base": "juggernaut"}}})
    today = settings_from_dict({"invokeai": {"url": "https://gpu.example:9090"}})
    resumed = today.with_recipe_of(recorded)
    assert resumed.render.backend == "invokeai" and resumed.invokeai.models.base == "juggernaut"  # the recipe
    assert resumed.invokeai.url == "https://gpu.example:9090" and resumed.invokeai.token_file is None


def test_plain_http_to_another_host_warns_once_and_still_connects(paths: Any,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    from ai_wallpaper.core import log
    from ai_wallpaper.render.invokeai.remote_stages import connect

    log.configure("info", "json")
    connect(settings_from_dict({"invokeai": {"url": "http://192.0.2.10:9090"}}), paths)
    connect(settings_from_dict({"invokeai": {"url": "http://127.0.0.1:9090"}}), paths)
    err = capfd.readouterr().err
    assert err.count("invokeai.plain_http") == 1 and "192.0.2.10" in err


def test_doctor_asks_for_exactly_the_nodes_the_graphs_send() -> None:
    plain = graphs.required_nodes(settings_from_dict({}))
    assert {"sdxl_model_loader", "sdxl_lora_collection_loader", "spandrel_image_to_image", "i2l",
            "tiled_multi_diffusion_denoise_latents"} <= plain
    assert "sdxl_refiner_model_loader" not in plain
    refined = graphs.required_nodes(settings_from_dict({"models": {"refiner": "refiner-1.0"},
                                                        "pipeline": {"enhance": {"enabled": False}}}))
    assert {"sdxl_refiner_model_loader", "sdxl_refiner_compel_prompt"} <= refined
    assert "tiled_multi_diffusion_denoise_latents" not in refined and "i2l" not in refined
