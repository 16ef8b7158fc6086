"""Model loading on real tiny models: sources, errors that name the setting, device choice, memory options."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from structlog.testing import capture_logs

from ai_wallpaper.catalog.model_fingerprints import describe_model, file_sha256
from ai_wallpaper.catalog.model_sources import resolve_source
from ai_wallpaper.config.render_settings import MemoryOptions, ModelSettings
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.devices import apply_memory_options, choose_device, decide_device
from ai_wallpaper.render.model_loading import load_sdxl, load_upscaler

TINY = ModelSettings(base="builtin:tiny", refiner="builtin:tiny-refiner", upscaler="builtin:tiny")


@pytest.fixture
def mpaths(paths: Paths, builtin_cache: Path, tiny_sdxl_dir: Path, tiny_refiner_dir: Path,
           tiny_upscaler_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A private tree whose built-in model cache is the session one (no rebuilds) and an empty HF cache."""
    paths.builtin_models_dir.parent.mkdir(parents=True, exist_ok=True)
    paths.builtin_models_dir.symlink_to(builtin_cache, target_is_directory=True)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    return paths


@pytest.fixture(scope="module")
def base_pipe(tmp_path_factory: pytest.TempPathFactory, builtin_cache: Path, tiny_sdxl_dir: Path) -> Any:
    """The built-in base loaded through load_sdxl once per module (tests must not mutate it)."""
    root = tmp_path_factory.mktemp("base-pipe")
    paths = Paths.under(root)
    paths.builtin_models_dir.parent.mkdir(parents=True)
    paths.builtin_models_dir.symlink_to(builtin_cache, target_is_directory=True)
    return load_sdxl("builtin:tiny", "base", TINY, paths)


def _image(pipe: Any) -> np.ndarray:
    out = pipe("a quiet harbour", num_inference_steps=2, width=64, height=64, output_type="np",
               generator=torch.Generator().manual_seed(3))
    return np.asarray(out.images[0])


# --- sources that load -----------------------------------------------------------------------------


def test_builtin_is_loaded_from_disk_like_a_directory(base_pipe: Any, mpaths: Paths,
                                                      tiny_sdxl_dir: Path) -> None:
    source = resolve_source("builtin:tiny", "base", TINY, mpaths)
    assert (source.kind, source.self_test, source.setting) == ("builtin", True, "models.base")
    assert Path(source.location).resolve() == tiny_sdxl_dir.resolve()
    assert type(base_pipe).__name__ == "StableDiffusionXLPipeline"
    # from_pretrained(<dir>) records the directory it read: the built-in went through the disk path.
    assert Path(base_pipe.config._name_or_path).resolve() == tiny_sdxl_dir.resolve()


def test_copied_builtin_dir_as_plain_path_loads_and_paints_the_same(base_pipe: Any, mpaths: Paths,
                                                                    tiny_sdxl_dir: Path) -> None:
    copy = mpaths.models_dir / "my-sdxl"
    shutil.copytree(tiny_sdxl_dir, copy)
    # A relative name is looked up under the data dir's models/ folder.
    source = resolve_source("my-sdxl", "base", TINY, mpaths)
    assert (source.kind, source.location, source.self_test) == ("dir", str(copy.resolve()), True)
    pipe = load_sdxl(str(copy), "base", TINY, mpaths)
    assert np.array_equal(_image(pipe), _image(base_pipe))


def test_hub_id_is_loaded_from_the_local_cache_only(mpaths: Paths, tiny_sdxl_dir: Path) -> None:
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--acme--tiny-sdxl"
    shutil.copytree(tiny_sdxl_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    source = resolve_source("acme/tiny-sdxl", "base", TINY, mpaths)
    assert (source.kind, source.hub_id, source.revision) == ("hub", "acme/tiny-sdxl", commit)
    pipe = load_sdxl(source, "base", TINY, mpaths)
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    info = describe_model(source)
    assert (info["revision"], info["hash_scope"]) == (commit, "file list and sizes (not contents)")
    # A snapshot without UNet weights (an interrupted download) is reported, not half-loaded.
    for weights in (repo / "snapshots" / commit / "unet").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelError, match=r"models\.base: acme/tiny-sdxl is only partly in the Hugging Face"):
        resolve_source("acme/tiny-sdxl", "base", TINY, mpaths)


def test_fp16_only_variant_dir_loads_in_float32(mpaths: Paths, tiny_sdxl_dir: Path) -> None:
    # Hub snapshots often hold only *.fp16.safetensors; they load (upcast) when running in float32.
    copy = mpaths.models_dir / "fp16-only"
    shutil.copytree(tiny_sdxl_dir, copy)
    for weights in copy.glob("*/*.safetensors"):
        weights.rename(weights.with_name(weights.name.replace(".safetensors", ".fp16.safetensors")))
    pipe = load_sdxl(str(copy), "base", TINY, mpaths)
    assert pipe.unet.dtype == torch.float32


def test_upscaler_by_relative_name_under_models_dir(mpaths: Paths, tiny_upscaler_file: Path) -> None:
    mpaths.models_dir.mkdir(parents=True)
    shutil.copy(tiny_upscaler_file, mpaths.models_dir / "my-esrgan.safetensors")
    models = ModelSettings(upscaler="my-esrgan.safetensors")
    descriptor = load_upscaler("my-esrgan.safetensors", models, mpaths)
    assert (descriptor.scale, descriptor.architecture.name, descriptor.purpose) == (4, "ESRGAN", "SR")
    assert not descriptor.model.training
    assert descriptor.dtype == torch.float32  # CPU: never half
    out = descriptor(torch.rand(1, 3, 16, 8))
    assert tuple(out.shape) == (1, 3, 64, 32)


def test_builtin_upscaler(mpaths: Paths) -> None:
    descriptor = load_upscaler("builtin:tiny", TINY, mpaths)
    assert descriptor.scale == 4
    assert resolve_source("builtin:tiny", "upscaler", TINY, mpaths).self_test


# --- errors that name the setting ------------------------------------------------------------------


def test_missing_file_names_the_setting_and_the_path(mpaths: Paths) -> None:
    with pytest.raises(ModelError) as err:
        load_sdxl("/nonexistent/sd_xl_base_1.0.safetensors", "base", TINY, mpaths)
    expected = "models.base: '/nonexistent/sd_xl_base_1.0.safetensors' was not found"
    assert err.value.message.startswith(expected)
    assert err.value.hint and "builtin:tiny" in err.value.hint


def test_missing_refiner_dir_lists_what_was_tried(mpaths: Paths) -> None:
    with pytest.raises(ModelError) as err:
        resolve_source("./refiners/mine", "refiner", TINY, mpaths)
    msg = err.value.message
    assert msg.startswith("models.refiner: './refiners/mine' was not found")
    assert str(mpaths.models_dir / "refiners/mine") in msg
    assert "Traceback" not in str(err.value) and "huggingface" not in msg.lower()


def test_unknown_hub_id_without_downloads(mpaths: Paths) -> None:
    with pytest.raises(ModelError) as err:
        resolve_source("nobody/no-such-sdxl", "base", TINY, mpaths)
    assert "models.base: 'nobody/no-such-sdxl' is not a local path" in err.value.message
    assert "not in the Hugging Face cache" in err.value.message
    assert err.value.hint and "models.allow_download: true" in err.value.hint
    allowed = ModelSettings(allow_download=True)
    source = resolve_source("nobody/no-such-sdxl", "base", allowed, mpaths)
    assert (source.kind, source.location, source.path) == ("hub", "nobody/no-such-sdxl", None)


def test_missing_upscaler_says_where_to_put_it(mpaths: Paths) -> None:
    with pytest.raises(ModelError) as err:
        load_upscaler("RealESRGAN_x4plus.pth", ModelSettings(), mpaths)
    assert err.value.message.startswith("models.upscaler: 'RealESRGAN_x4plus.pth' was not found")
    assert str(mpaths.models_dir / "RealESRGAN_x4plus.pth") in err.value.message
    hint = err.value.hint or ""
    assert "RealESRGAN_x4plus.pth" in hint and str(mpaths.models_dir) in hint and "spandrel" in hint


def test_non_upscaler_files_for_the_upscaler(mpaths: Paths, tiny_sdxl_dir: Path, tmp_path: Path) -> None:
    unet = tiny_sdxl_dir / "unet" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(ModelError, match=r"models\.upscaler: .* is not a supported upscaler model"):
        load_upscaler(str(unet), ModelSettings(), mpaths)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(ModelError, match=r"models\.upscaler: .*junk\.pth is not a weights file"):
        load_upscaler(str(junk), ModelSettings(), mpaths)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(ModelError, match=r"models\.upscaler: .*truncated\.pth is not a weights file"):
        load_upscaler(str(truncated), ModelSettings(), mpaths)
    with pytest.raises(ModelError, match="is a directory"):
        resolve_source(str(tiny_sdxl_dir), "upscaler", ModelSettings(), mpaths)


def test_base_and_refiner_cannot_be_swapped(mpaths: Paths, tiny_sdxl_dir: Path,
                                            tiny_refiner_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"models\.refiner: 'builtin:tiny' is the built-in base model"):
        resolve_source("builtin:tiny", "refiner", TINY, mpaths)
    with pytest.raises(ModelError, match=r"models\.base: .* is an SDXL refiner"):
        load_sdxl(str(tiny_refiner_dir), "base", TINY, mpaths)
    with pytest.raises(ModelError, match=r"models\.refiner: .* is an SDXL base model") as err:
        load_sdxl(str(tiny_sdxl_dir), "refiner", TINY, mpaths)
    assert err.value.hint and "null" in err.value.hint


def test_directory_without_model_index(mpaths: Paths, tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    with pytest.raises(ModelError, match="not a diffusers model directory"):
        resolve_source(str(tmp_path / "weights"), "base", TINY, mpaths)


def test_broken_directory_gives_one_clear_error(mpaths: Paths, tiny_sdxl_dir: Path) -> None:
    broken = mpaths.models_dir / "broken"
    shutil.copytree(tiny_sdxl_dir, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelError) as err:
        load_sdxl(str(broken), "base", TINY, mpaths)
    assert err.value.message.startswith(f"models.base: could not load diffusers directory {broken}")
    assert "\n" not in err.value.message


# --- device and dtype ------------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "dtype", "cuda", "mps", "expected"), [
    ("auto", "auto", True, True, ("cuda", "float16")),
    ("auto", "bfloat16", True, False, ("cuda", "bfloat16")),
    ("auto", "auto", False, True, ("mps", "float16")),
    ("auto", "auto", False, False, ("cpu", "float32")),
    ("cpu", "auto", True, True, ("cpu", "float32")),
    ("cpu", "bfloat16", False, False, ("cpu", "bfloat16")),
    ("cuda", "float32", True, False, ("cuda", "float32")),
])
def test_decide_device_matrix(device: str, dtype: str, cuda: bool, mps: bool,
                              expected: tuple[str, str]) -> None:
    got = decide_device(device, dtype, cuda=cuda, mps=mps)
    assert got[:2] == expected
    assert f"models.device {device}" in got[2]


@pytest.mark.parametrize(("device", "dtype", "cuda", "mps", "bf16", "message"), [
    ("cuda", "auto", False, True, True, "models.device is 'cuda' but no CUDA device is available"),
    ("mps", "auto", True, False, True, "models.device is 'mps' but Apple MPS is not available"),
    ("auto", "float16", False, False, True, "models.dtype float16 is not usable on the CPU"),
    ("auto", "bfloat16", True, False, False, "models.dtype bfloat16 is not supported by this GPU"),
])
def test_decide_device_errors(device: str, dtype: str, cuda: bool, mps: bool, bf16: bool,
                              message: str) -> None:
    with pytest.raises(ModelError) as err:
        decide_device(device, dtype, cuda=cuda, mps=mps, cuda_bf16=bf16)
    assert err.value.message == message and err.value.hint


def test_choose_device_on_this_cpu_machine() -> None:
    assert not torch.cuda.is_available()  # this suite runs on CPU; the CUDA branches are in the matrix above
    choice = choose_device("auto", "auto")
    assert (choice.device, choice.dtype, choice.dtype_name) == ("cpu", torch.float32, "float32")
    assert "no CUDA or MPS device" in choice.reason
    assert choose_device("cpu", "bfloat16").dtype == torch.bfloat16
    with pytest.raises(ModelError, match="float16 is not usable on the CPU") as err:
        choose_device("cpu", "float16")
    assert err.value.hint and "float32" in err.value.hint
    with pytest.raises(ModelError, match="no CUDA device"):
        choose_device("cuda", "auto")


# --- memory options and sharing ------------------------------------------------------------------


def test_memory_options_applied_and_cuda_only_ones_ignored_on_cpu(mpaths: Paths) -> None:
    from diffusers.models.attention_processor import SlicedAttnProcessor

    memory = MemoryOptions(vae_tiling=True, attention_slicing=True, cpu_offload="model", channels_last=True,
                           torch_compile=True)
    models = ModelSettings(base="builtin:tiny", memory=memory)
    with capture_logs() as logs:
        pipe = load_sdxl("builtin:tiny", "base", models, mpaths)
    assert pipe.vae.use_tiling
    assert all(isinstance(p, SlicedAttnProcessor) for p in pipe.unet.attn_processors.values())
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert any("cpu_offload is ignored" in w for w in warnings)
    assert any("torch_compile is ignored" in w for w in warnings)
    loaded = next(e for e in logs if e["event"] == "model.loaded")
    assert loaded["memory"] == ["vae_tiling", "attention_slicing", "channels_last"]
    # The options still produce a picture.
    assert _image(pipe).shape == (64, 64, 3)
    apply_memory_options(pipe, MemoryOptions(vae_tiling=False), choose_device())
    assert not pipe.vae.use_tiling


def test_refiner_shares_identical_components_with_the_base(base_pipe: Any, mpaths: Paths, tiny_sdxl_dir: Path,
                                                            tiny_refiner_dir: Path) -> None:
    # The built-in refiner's own text_encoder_2/VAE differ from the base's: nothing is shared.
    own = load_sdxl("builtin:tiny-refiner", "refiner", TINY, mpaths, share_with=base_pipe)
    assert own.vae is not base_pipe.vae and own.text_encoder_2 is not base_pipe.text_encoder_2
    # A refiner whose text_encoder_2 and VAE are byte-identical to the base's (like the official pair).
    twin = mpaths.models_dir / "refiner-twin"
    shutil.copytree(tiny_refiner_dir, twin)
    for name in ("text_encoder_2", "vae"):
        shutil.rmtree(twin / name)
        shutil.copytree(tiny_sdxl_dir / name, twin / name)
    refiner = load_sdxl(str(twin), "refiner", TINY, mpaths, share_with=base_pipe)
    assert type(refiner).__name__ == "StableDiffusionXLImg2ImgPipeline"
    assert refiner.vae is base_pipe.vae and refiner.text_encoder_2 is base_pipe.text_encoder_2
    assert refiner.unet is not base_pipe.unet
    # Sequential offload hooks each module once: no sharing then.
    sequential = ModelSettings(memory=MemoryOptions(cpu_offload="sequential"))
    apart = load_sdxl(str(twin), "refiner", sequential, mpaths, share_with=base_pipe)
    assert apart.vae is not base_pipe.vae


# --- fingerprints -----------------------------------------------------------------------------------


def test_file_sha256_is_cached_by_size_and_mtime(tmp_path: Path) -> None:
    file = tmp_path / "weights.bin"
    file.write_bytes(b"x" * 1000)
    cache = tmp_path / "cache"
    expected = hashlib.sha256(b"x" * 1000).hexdigest()
    assert file_sha256(file, cache) == expected
    entries = json.loads((cache / "hashes.json").read_text())
    assert entries[str(file.resolve())]["sha256"] == expected
    # A matching (size, mtime) entry is trusted without re-reading 7 GB...
    entries[str(file.resolve())]["sha256"] = "cached"
    (cache / "hashes.json").write_text(json.dumps(entries))
    assert file_sha256(file, cache) == "cached"
    # ...and a changed file is hashed again.
    file.write_bytes(b"y" * 1000)
    assert file_sha256(file, cache) == hashlib.sha256(b"y" * 1000).hexdigest()


def test_describe_model_for_run_json(mpaths: Paths, tiny_upscaler_file: Path) -> None:
    up = describe_model(resolve_source("builtin:tiny", "upscaler", TINY, mpaths), mpaths.cache_dir)
    assert up["sha256"] == hashlib.sha256(tiny_upscaler_file.read_bytes()).hexdigest()
    assert (up["hash_scope"], up["self_test"], up["kind"]) == ("file contents", True, "builtin")
    base = describe_model(resolve_source("builtin:tiny", "base", TINY, mpaths), mpaths.cache_dir)
    assert base["hash_scope"] == "file list and sizes (not contents)" and len(base["sha256"]) == 64
    assert base["model_index_sha256"] and base["self_test"] is True
    json.dumps([up, base])  # JSON-able as is


@pytest.mark.parametrize(("setting", "pixels", "tiled"), [
    ("auto", 1920 * 1024, False),  # the base image is decoded whole: tiles leave tone steps
    ("auto", 7680 * 4096, True),  # 8K needs tiles
    ("always", 64 * 64, True), ("never", 7680 * 4096, False),
    (True, 64 * 64, True), (False, 7680 * 4096, False),  # older settings files: true/false
])
def test_vae_tiling_modes(setting: Any, pixels: int, tiled: bool) -> None:
    from ai_wallpaper.render.devices import wants_vae_tiling

    assert wants_vae_tiling(setting, pixels) is tiled


def test_vae_tiling_setting_accepts_modes_and_old_booleans_only() -> None:
    from ai_wallpaper.config.settings import settings_from_dict
    from ai_wallpaper.core.errors import ConfigError

    for value in ("auto", "always", "never", True, False):
        assert settings_from_dict({"models": {"memory": {"vae_tiling": value}}}).models.memory.vae_tiling == value
    with pytest.raises(ConfigError, match=r"models\.memory\.vae_tiling"):
        settings_from_dict({"models": {"memory": {"vae_tiling": "sometimes"}}})


def test_determinism_switch_is_cuda_only() -> None:
    import torch

    from ai_wallpaper.render.devices import apply_determinism, choose_device

    cpu = choose_device("cpu", "float32")
    assert apply_determinism(True, cpu) is False  # CPU kernels are deterministic already
    assert not torch.are_deterministic_algorithms_enabled()


def test_model_hashes_are_recorded_on_a_fresh_cache(paths: Paths) -> None:
    from ai_wallpaper.render.model_holder import describe_models

    assert not paths.builtin_models_dir.exists()
    described = describe_models(ModelSettings(base="builtin:tiny", upscaler="builtin:tiny"), paths)
    assert described["base"]["sha256"] and described["upscaler"]["sha256"]
    assert described["upscaler"]["hash_scope"] == "file contents"
