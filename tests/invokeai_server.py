"""A real InvokeAI server on 127.0.0.1 for the tests, with the tiny test models installed.

`make test-assets` builds what it needs once, outside the repo (scripts/invokeai_env.py: a venv with
the pinned InvokeAI sharing the project's torch; scripts/tiny_sdxl.py: tiny SDXL base, refiner and
LoRA). `launch` starts `invokeai-web` on a fresh root and a free port in its own process group, waits
until it answers, and installs the models in place under stable names; the `invokeai_server` fixture in
conftest.py runs it once per session. The models are copied into the root first, so nothing the server
or a test does to them (InvokeAI may move or delete a model's files) reaches the shared cache.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

READY_TIMEOUT_S = 120.0
INSTALL_TIMEOUT_S = 120.0
STOP_GRACE_S = 15.0
# Stable names -> (file in the tiny-sdxl folder or None for the built-in upscaler, expected base, type).
MODELS: dict[str, tuple[str | None, str, str]] = {
    "tiny-sdxl": ("base", "sdxl", "main"),
    "tiny-sdxl-refiner": ("refiner", "sdxl-refiner", "main"),
    # InvokeAI 6.14.2 identifies a single-file SD LoRA only under kohya names (lora.safetensors, in the
    # diffusers format, is recorded as base/type "unknown"); the weights are the same.
    "tiny-lora": ("lora-kohya.safetensors", "sdxl", "lora"),
    "tiny-esrgan-x4": (None, "any", "spandrel_image_to_image"),
}


def _script(name: str) -> ModuleType:
    """A module of scripts/, so the folder names have one owner (the script that makes them)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_aiw_scripts_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_assets(assets: Path) -> tuple[Path, Path] | None:
    """(InvokeAI venv, tiny-sdxl folder) under the test assets folder, or None if either is not built."""
    env, tiny = _script("invokeai_env"), _script("tiny_sdxl")
    folder = env.env_folder(assets)
    models = assets / tiny.FOLDER
    if not (folder / env.STAMP).is_file() or not (models / "base").is_dir():
        return None
    # The venv borrows torch from a project venv by symlinks (scripts/invokeai_env.py): point them at the
    # one running these tests, so a checkout deleted since `make test-assets` cannot leave them dangling.
    env.link_shared(folder, Path(sysconfig.get_paths()["purelib"]))
    return folder / "venv", models


@dataclass(frozen=True)
class ModelRecord:
    """A model as the server reports it (`record` is the whole answer)."""

    name: str
    key: str
    base: str
    type: str
    hash: str
    path: Path  # the local copy the server was given
    record: dict[str, Any] = field(repr=False)

    def identifier(self) -> dict[str, str]:
        """The `ModelIdentifierField` a graph node takes."""
        return {"key": self.key, "hash": self.hash, "name": self.name, "base": self.base, "type": self.type}


@dataclass
class InvokeAIServer:
    venv: Path
    root: Path
    port: int
    models: dict[str, ModelRecord] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def model_paths(self) -> dict[str, Path]:
        return {name: model.path for name, model in self.models.items()}

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start `invokeai-web` on this root and port and wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"InvokeAI is already running (pid {self.proc.pid})")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(self.venv / "bin" / "invokeai-web"), "--root", str(self.root)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # its own group: stop() reaches its children
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"InvokeAI exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/api/v1/app/version", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.kill()
        raise RuntimeError(f"InvokeAI did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the process group, SIGKILL what is left of it after `grace_s` (or at once once the
        leader is gone, for children that outlived it)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.kill()

    def kill(self) -> None:
        """SIGKILL the process group now, as a crash would end it."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self._signal(signal.SIGKILL)
        self.proc.wait()

    def _exited(self) -> bool:
        # WNOWAIT leaves the leader a zombie, so its pid, the group id, cannot be reused before kill().
        assert self.proc is not None
        return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

    def _signal(self, sig: signal.Signals) -> None:
        # Only called while the leader is not reaped: the group id is still ours (start_new_session).
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.url}{path}", params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def run_graph(self, nodes: dict[str, dict[str, Any]], edges: list[tuple[str, str, str, str]],
                  timeout_s: float = 300.0) -> dict[str, Any]:
        """Enqueue one run of a graph, edges given as (source node, field, destination node, field); wait
        for it and return the queue item (`session.results` is keyed by prepared node id; the
        `session.source_prepared_mapping` maps a node id of `nodes` to those)."""
        graph = {"id": "g", "nodes": nodes,
                 "edges": [{"source": {"node_id": a, "field": b}, "destination": {"node_id": c, "field": d}}
                           for a, b, c, d in edges]}
        response = requests.post(f"{self.url}/api/v1/queue/default/enqueue_batch",
                                 json={"batch": {"graph": graph, "runs": 1}, "prepend": False}, timeout=30)
        if not response.ok:
            raise RuntimeError(f"enqueue refused: {response.status_code} {response.text}")
        item_id = response.json()["item_ids"][0]
        deadline = time.monotonic() + timeout_s
        while (item := self.get(f"/api/v1/queue/default/i/{item_id}"))["status"] in ("pending", "in_progress"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"queue item {item_id} still {item['status']} after {timeout_s:.0f} s")
            time.sleep(0.25)
        return dict(item)

    def install(self, name: str, source: Path, timeout_s: float = INSTALL_TIMEOUT_S) -> ModelRecord:
        """Install `source` in place under `name` and wait for the job; the record as the server lists it."""
        response = requests.post(f"{self.url}/api/v2/models/install", params={"source": str(source), "inplace": "true"},
                                 json={"name": name}, timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"install of {source} refused: {response.status_code} {response.text}")
        job_id = response.json()["id"]
        deadline = time.monotonic() + timeout_s
        while (job := self.get(f"/api/v2/models/install/{job_id}"))["status"] not in ("completed", "error",
                                                                                        "cancelled"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"install of {source} still {job['status']} after {timeout_s:.0f} s")
            time.sleep(0.2)
        if job["status"] != "completed":
            raise RuntimeError(f"install of {source}: {job['status']}: {job.get('error')}\n"
                               f"{job.get('error_traceback')}")
        key = job["config_out"]["key"]
        record = self.get(f"/api/v2/models/i/{key}")
        return ModelRecord(name=record["name"], key=record["key"], base=record["base"], type=record["type"],
                           hash=record["hash"], path=source, record=record)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(venv: Path, tiny: Path, upscaler: Path, root: Path) -> InvokeAIServer:
    """Start a server on a fresh `root` with the four test models installed; stop() it when done."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (root / "invokeai.yaml").write_text(f"schema_version: 4.0.2\nhost: 127.0.0.1\nport: {port}\n", encoding="utf-8")
    staged = root / "test-models"
    sources: dict[str, Path] = {}
    for name, (entry, _, _) in MODELS.items():
        original = upscaler if entry is None else tiny / entry
        if original.is_dir():
            sources[name] = shutil.copytree(original, staged / name)
        else:
            staged.mkdir(parents=True, exist_ok=True)
            sources[name] = shutil.copyfile(original, staged / f"{name}{original.suffix}")
    server = InvokeAIServer(venv=venv, root=root, port=port)
    server.start()
    try:
        for name, source in sources.items():
            model = server.install(name, source)
            _, base, kind = MODELS[name]
            if (model.name, model.base, model.type) != (name, base, kind):
                raise RuntimeError(f"{source} was installed as {model.name!r} ({model.base}, {model.type}), "
                                   f"not {name!r} ({base}, {kind})")
            server.models[name] = model
    except BaseException:
        server.stop()
        raise
    return server
