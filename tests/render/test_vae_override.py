"""models.vae: a separate VAE for the base and the refiner, from a folder, a single file or the hub cache,
resolved, checked, recorded and refused like every other model (tiny models, CPU, offline)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from ai_wallpaper.catalog.model_sources import resolve_source
from ai_wallpaper.cli import main
from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.config.settings import settings_from_dict
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.model_holder import describe_models
from ai_wallpaper.render.model_loading import load_sdxl
from tests.lora_factory import sdxl_diffusers_keys, sdxl_kohya_keys, write_keys
from tests.render.test_models import _image
from tests.render.test_pipeline import SMALL, write_settings
from tests.render.test_single_file import vae_to_ldm

WEIGHTS = "diffusion_pytorch_model.safetensors"
NO_ENHANCE = {**SMALL["pipeline"], "enhance": {"enabled": False}}


def _tiny(**kw: Any) -> ModelSettings:
    return ModelSettings(base="builtin:tiny", upscaler="builtin:tiny", device="cpu", **kw)


@pytest.fixture(scope="module")
def other_vae(tmp_path_factory: pytest.TempPathFactory, tiny_sdxl_dir: Path) -> Path:
    """The built-in VAE's architecture with other random weights, force_upcast off and another scale."""
    out = tmp_path_factory.mktemp("vaes") / "other-vae"
    out.mkdir()
    generator = torch.Generator().manual_seed(11)
    state = load_file(str(tiny_sdxl_dir / "vae" / WEIGHTS))
    save_file({k: (v + 0.05 * torch.randn(v.shape, generator=generator)).contiguous() for k, v in state.items()},
              str(out / WEIGHTS))
    config = json.loads((tiny_sdxl_dir / "vae" / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "force_upcast": False, "scaling_factor": 0.2}))
    return out


@pytest.fixture(scope="module")
def other_vae_file(other_vae: Path) -> Path:
    """The same VAE as one original-layout file, as VAEs are shared (e.g. sdxl_vae.safetensors)."""
    config = json.loads((other_vae / "config.json").read_text())
    ldm = vae_to_ldm(load_file(str(other_vae / WEIGHTS)), config)
    file = other_vae.parent / "other-vae.safetensors"
    save_file({k.removeprefix("first_stage_model."): v.contiguous() for k, v in ldm.items()}, str(file))
    return file


@pytest.fixture
def mpaths(paths: Paths, builtin_cache: Path, tiny_sdxl_dir: Path, tiny_refiner_dir: Path,
           tiny_upscaler_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A private tree on the session's built-in models and an empty HF cache."""
    paths.builtin_models_dir.parent.mkdir(parents=True, exist_ok=True)
    paths.builtin_models_dir.symlink_to(builtin_cache, target_is_directory=True)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    return paths


def _vae_equals(vae: Any, folder: Path) -> bool:
    expected = load_file(str(folder / WEIGHTS))
    got = vae.state_dict()
    return set(got) == set(expected) and all(torch.equal(got[k], expected[k]) for k in expected)


# --- loading ----------------------------------------------------------------------------------------


def test_vae_folder_goes_into_base_and_is_shared_with_the_refiner(mpaths: Paths, other_vae: Path,
                                                                 tiny_sdxl_dir: Path) -> None:
    models = _tiny(refiner="builtin:tiny-refiner", vae=str(other_vae))
    base = load_sdxl("builtin:tiny", "base", models, mpaths)
    assert _vae_equals(base.vae, other_vae) and not _vae_equals(base.vae, tiny_sdxl_dir / "vae")
    # its own config is used as is: no fp32 upcast asked for, its latent scale respected
    assert (base.vae.config.force_upcast, base.vae.config.scaling_factor) == (False, 0.2)
    refiner = load_sdxl("builtin:tiny-refiner", "refiner", models, mpaths, share_with=base)
    assert refiner.vae is base.vae
    alone = load_sdxl("builtin:tiny-refiner", "refiner", models, mpaths)  # nothing to share: loaded again
    assert alone.vae is not base.vae and _vae_equals(alone.vae, other_vae)


def test_single_vae_file_loads_with_the_models_vae_config(mpaths: Paths, other_vae: Path,
                                                          other_vae_file: Path) -> None:
    source = resolve_source(str(other_vae_file), "vae", _tiny(), mpaths)
    assert (source.kind, source.setting) == ("file", "models.vae")
    pipe = load_sdxl("builtin:tiny", "base", _tiny(vae=str(other_vae_file)), mpaths)
    assert _vae_equals(pipe.vae, other_vae)
    assert pipe.vae.config.scaling_factor == 0.13025  # a single file has no config: the base's is used


def test_null_vae_is_todays_behaviour_and_an_own_vae_copy_paints_the_same(
        mpaths: Paths, tiny_sdxl_dir: Path, other_vae: Path) -> None:
    own = load_sdxl("builtin:tiny", "base", _tiny(), mpaths)
    assert _vae_equals(own.vae, tiny_sdxl_dir / "vae")
    copy = mpaths.models_dir / "own-vae"
    shutil.copytree(tiny_sdxl_dir / "vae", copy)
    same = load_sdxl("builtin:tiny", "base", _tiny(vae="own-vae"), mpaths)  # relative: under models/
    assert np.array_equal(_image(own), _image(same))
    other = load_sdxl("builtin:tiny", "base", _tiny(vae=str(other_vae)), mpaths)
    assert not np.array_equal(_image(own), _image(other))


def test_hub_id_vae_comes_from_the_cache_only(mpaths: Paths, other_vae: Path) -> None:
    from huggingface_hub import constants

    with pytest.raises(ModelError, match=r"models\.vae: 'acme/vae-fix' is not a local path .* downloads are off"):
        resolve_source("acme/vae-fix", "vae", _tiny(), mpaths)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--acme--vae-fix"
    shutil.copytree(other_vae, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    source = resolve_source("acme/vae-fix", "vae", _tiny(), mpaths)
    assert (source.kind, source.hub_id, source.revision) == ("hub", "acme/vae-fix", commit)
    pipe = load_sdxl("builtin:tiny", "base", _tiny(vae="acme/vae-fix"), mpaths)
    assert _vae_equals(pipe.vae, other_vae)


# --- run.json and the recipe ------------------------------------------------------------------------


def test_run_json_records_the_vae(mpaths: Paths, other_vae: Path, other_vae_file: Path) -> None:
    folder = describe_models(_tiny(vae=str(other_vae)), mpaths)["vae"]
    assert (folder["kind"], folder["location"], folder["role"]) == ("dir", str(other_vae.resolve()), "vae")
    assert len(folder["sha256"]) == 64
    assert folder["weights_sha256"][WEIGHTS] == hashlib.sha256((other_vae / WEIGHTS).read_bytes()).hexdigest()
    single = describe_models(_tiny(vae=str(other_vae_file)), mpaths)["vae"]
    assert (single["kind"], single["hash_scope"]) == ("file", "file contents") and len(single["sha256"]) == 64
    assert "vae" not in describe_models(_tiny(), mpaths)


def test_the_vae_is_part_of_the_resume_recipe() -> None:
    recorded = settings_from_dict({"models": {"vae": "/models/fix-vae"}})
    today = settings_from_dict({"models": {"vae": None, "allow_download": True}})
    resumed = today.with_recipe_of(recorded)
    assert (resumed.models.vae, resumed.models.allow_download) == ("/models/fix-vae", True)
    assert recorded.fingerprint() != today.fingerprint()


def test_generate_with_a_vae_folder_records_it(paths_with_models: Paths, other_vae: Path, tmp_path: Path) -> None:
    settings = {**SMALL, "models": {**SMALL["models"], "vae": str(other_vae)}, "pipeline": NO_ENHANCE}
    cfg = write_settings(paths_with_models, settings)
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--output", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["models"]["vae"]["location"] == str(other_vae.resolve())
    assert record["settings"]["models"]["vae"] == str(other_vae)


# --- refusals ---------------------------------------------------------------------------------------


def _refused(paths: Paths, vae: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    cfg = write_settings(paths, {**SMALL, "models": {**SMALL["models"], "vae": vae}, "pipeline": NO_ENHANCE})
    code = main(["generate", "--config", str(cfg), "--no-wallpaper", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "models.vae" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before a run folder exists
    assert main(["config", "validate", "--config", str(cfg)]) == 1
    assert "models.vae" in capsys.readouterr().out
    return err


@pytest.mark.parametrize(("kind", "needle"), [
    ("kohya-lora", "is a LoRA, not a VAE"), ("diffusers-lora", "is a LoRA, not a VAE"),
    ("upscaler", "holds no VAE"), ("sdxl-unet", "Stable Diffusion UNet"), ("missing", "was not found"),
    ("flux-vae", "16 latent channels"), ("builtin", "no built-in VAE"), ("sdxl-folder", "not a diffusers VAE"),
])
def test_what_is_not_an_sdxl_vae_is_refused(paths_with_models: Paths, tmp_path: Path, tiny_upscaler_file: Path,
                                            tiny_sdxl_dir: Path, capsys: pytest.CaptureFixture[str],
                                            kind: str, needle: str) -> None:
    files = {
        "kohya-lora": lambda p: write_keys(p, sdxl_kohya_keys()),
        "diffusers-lora": lambda p: write_keys(p, sdxl_diffusers_keys()),
        "upscaler": lambda p: shutil.copy(tiny_upscaler_file, p),
        "sdxl-unet": lambda p: write_keys(p, {"model.diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3)}),
        "flux-vae": lambda p: write_keys(p, {"encoder.conv_in.weight": (8, 3, 3, 3),
                                             "decoder.conv_in.weight": (8, 16, 3, 3)}),
    }
    spec = {"missing": str(tmp_path / "nope.safetensors"), "builtin": "builtin:tiny",
            "sdxl-folder": str(tiny_sdxl_dir)}.get(kind, str(tmp_path / f"{kind}.safetensors"))
    if kind in files:
        files[kind](Path(spec))
    assert needle in _refused(paths_with_models, spec, tmp_path, capsys)


def test_a_vae_name_is_not_looked_up_in_the_working_directory(
        paths_with_models: Paths, tmp_path: Path, other_vae_file: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    shutil.copy(other_vae_file, cwd / "fix-vae.safetensors")
    monkeypatch.chdir(cwd)
    err = _refused(paths_with_models, "fix-vae.safetensors", tmp_path, capsys)
    assert str(paths_with_models.models_dir / "fix-vae.safetensors") in err and str(cwd) not in err
    # the models folder is where a bare name is found
    paths_with_models.models_dir.mkdir(parents=True)
    shutil.copy(other_vae_file, paths_with_models.models_dir / "fix-vae.safetensors")
    assert resolve_source("fix-vae.safetensors", "vae", _tiny(), paths_with_models).kind == "file"
