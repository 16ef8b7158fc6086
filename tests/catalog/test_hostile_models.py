"""Hostile model files through the CLI: a pickle that would run code, TorchScript archives, the cwd.

The pickles are real: unpickling them with plain `pickle`/`torch.load(weights_only=False)` creates a
marker file. Every test asserts the marker never appears and the CLI exits with the model code (4).
"""

from __future__ import annotations

import pathlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from ai_wallpaper.catalog.model_files import sniff
from ai_wallpaper.cli import main
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.paths import Paths
from tests.render.test_pipeline import SMALL, write_settings


class _Payload:
    """Unpickling this calls Path.touch(marker): the shape of every pickle exploit."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def malicious_pickle(target: Path, marker: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    """A torch.save zip whose state dict also carries the payload (as real exploit files do)."""
    torch.save({**(state or {"w": torch.zeros(2)}), "payload": _Payload(marker)}, target)
    return target


def torchscript_archive(target: Path) -> Path:
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 3, 3)), str(target))
    return target


def _generate(paths: Paths, *flags: str, settings: dict[str, Any] | None = None) -> int:
    cfg = write_settings(paths, settings or SMALL)
    return main(["generate", "--config", str(cfg), "--no-wallpaper", *flags])


def test_the_payload_is_real(tmp_path: Path) -> None:
    """Guard: the test pickle really runs code when loaded unsafely, so the tests below mean something."""
    marker = tmp_path / "marker"
    file = malicious_pickle(tmp_path / "x.pth", marker)
    torch.load(file, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("suffix", [".pth", ".ckpt", ".pt"])
def test_pickled_upscaler_never_runs_code(paths_with_models: Paths, tmp_path: Path, suffix: str,
                                          tiny_upscaler_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    marker = tmp_path / "marker"
    # Real upscaler weights plus the payload: a loader that did not refuse would build the model.
    file = malicious_pickle(tmp_path / f"up{suffix}", marker, dict(load_file(str(tiny_upscaler_file))))
    code = _generate(paths_with_models, "--upscaler", str(file), "--output", str(tmp_path / "run"))
    err = capsys.readouterr().err
    assert code == 4, err
    assert "models.upscaler" in err and "refused" in err and "pathlib.Path" in err and "Traceback" not in err
    assert not marker.exists()
    assert not (tmp_path / "run").exists()  # refused before the first stage, not when the upscaler loads


@pytest.mark.parametrize("suffix", [".pth", ".ckpt"])
def test_load_time_guard_holds_even_when_the_early_scan_passes(tmp_path: Path, suffix: str,
                                                               tiny_upscaler_file: Path) -> None:
    """Defence in depth: a payload made of torch callables passes the early name scan (it allows any
    torch.*) and must still be stopped by torch's weights-only unpickler when the upscaler loads."""
    from safetensors.torch import load_file

    from ai_wallpaper.catalog.pickle_scan import forbidden_globals
    from ai_wallpaper.config.render_settings import ModelSettings
    from ai_wallpaper.render.model_loading import load_upscaler

    class TorchCall:
        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            return (torch.random.manual_seed, (1,))

    file = tmp_path / f"up{suffix}"
    torch.save({**load_file(str(tiny_upscaler_file)), "x": TorchCall()}, file)
    assert forbidden_globals(file) == []
    with pytest.raises(ModelError, match="refused: it holds pickled objects other than tensors"):
        load_upscaler(str(file), ModelSettings(device="cpu"), Paths.under(tmp_path / "p"))


def test_pickled_single_file_checkpoint_never_runs_code(paths_with_models: Paths, tmp_path: Path,
                                                        tiny_sdxl_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "marker"
    file = malicious_pickle(tmp_path / "sdxl.ckpt", marker)
    settings = {**SMALL, "models": {**SMALL["models"], "base": str(file), "base_config": str(tiny_sdxl_dir)}}
    code = _generate(paths_with_models, "--output", str(tmp_path / "run"), settings=settings)
    err = capsys.readouterr().err
    assert code == 4, err
    assert "models.base" in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_pickled_vae_never_runs_code(paths_with_models: Paths, tmp_path: Path, tiny_sdxl_dir: Path, suffix: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    marker = tmp_path / "marker"
    # Real VAE weights plus the payload: a loader that did not refuse would build the VAE.
    state = dict(load_file(str(tiny_sdxl_dir / "vae" / "diffusion_pytorch_model.safetensors")))
    file = malicious_pickle(tmp_path / f"vae{suffix}", marker, state)
    settings = {**SMALL, "models": {**SMALL["models"], "vae": str(file)}}
    code = _generate(paths_with_models, "--output", str(tmp_path / "run"), settings=settings)
    err = capsys.readouterr().err
    assert code == 4, err
    assert "models.vae" in err and "refused" in err and "pathlib.Path" in err and "Traceback" not in err
    assert not marker.exists()
    assert not (tmp_path / "run").exists()
    # a folder whose weights are that pickle is refused the same way
    folder = tmp_path / "vae-folder"
    shutil.copytree(tiny_sdxl_dir / "vae", folder, ignore=shutil.ignore_patterns("*.safetensors"))
    shutil.copy(file, folder / "diffusion_pytorch_model.bin")
    settings = {**SMALL, "models": {**SMALL["models"], "vae": str(folder)}}
    assert _generate(paths_with_models, "--output", str(tmp_path / "run"), settings=settings) == 4
    assert "models.vae" in capsys.readouterr().err and not marker.exists()


def test_load_time_guard_holds_for_a_pickled_vae(paths_with_models: Paths, tmp_path: Path,
                                                 tiny_sdxl_dir: Path) -> None:
    """A payload of torch callables passes the early scan; the weights-only read still stops it."""
    from safetensors.torch import load_file

    from ai_wallpaper.catalog.pickle_scan import forbidden_globals
    from ai_wallpaper.config.render_settings import ModelSettings
    from ai_wallpaper.render.model_loading import load_sdxl

    class TorchCall:
        def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
            return (torch.random.manual_seed, (1,))

    file = tmp_path / "vae.ckpt"
    state = load_file(str(tiny_sdxl_dir / "vae" / "diffusion_pytorch_model.safetensors"))
    torch.save({"state_dict": {**state, "x": TorchCall()}}, file)
    assert forbidden_globals(file) == []
    models = ModelSettings(base="builtin:tiny", vae=str(file), device="cpu")
    with pytest.raises(ModelError, match=r"models\.vae: .* refused: it holds pickled objects other than tensors"):
        load_sdxl("builtin:tiny", "base", models, paths_with_models)
    # the same file without the payload is a valid VAE checkpoint and loads (weights-only, nested state_dict)
    torch.save({"state_dict": state, "global_step": 7}, file)
    assert torch.equal(load_sdxl("builtin:tiny", "base", models, paths_with_models).vae.state_dict()[
        "decoder.conv_in.weight"], state["decoder.conv_in.weight"])


@pytest.mark.parametrize("component", ["unet", "text_encoder"])
def test_pickled_bin_inside_a_diffusers_folder_never_runs_code(paths_with_models: Paths, tmp_path: Path,
                                                               tiny_sdxl_dir: Path, component: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    marker = tmp_path / "marker"
    model = tmp_path / "model"
    shutil.copytree(tiny_sdxl_dir, model)
    weights = next((model / component).glob("*.safetensors"))
    state = dict(load_file(str(weights)))
    weights.unlink()
    bin_name = "diffusion_pytorch_model.bin" if component == "unet" else "pytorch_model.bin"
    malicious_pickle(model / component / bin_name, marker, state)
    code = _generate(paths_with_models, "--model", str(model), "--output", str(tmp_path / "run"))
    err = capsys.readouterr().err
    assert code == 4, err
    assert "models.base" in err and bin_name in err and "Traceback" not in err
    assert not marker.exists()
    # and diffusers/transformers' own loaders (weights_only) refuse it too, without the early scan
    from ai_wallpaper.catalog.model_sources import ModelSource
    from ai_wallpaper.config.render_settings import ModelSettings
    from ai_wallpaper.render.model_loading import load_sdxl

    source = ModelSource(role="base", spec=str(model), kind="dir", location=str(model), label="test",
                         setting="models.base")
    with pytest.raises(ModelError, match=r"models\.base: could not load"):
        load_sdxl(source, "base", ModelSettings(device="cpu"), paths_with_models)
    assert not marker.exists()


@pytest.mark.parametrize(("role", "suffix"), [("upscaler", ".pt"), ("upscaler", ".pth"), ("upscaler", ".safetensors"),
                                              ("base", ".ckpt"), ("base", ".safetensors")])
def test_torchscript_is_refused_before_torch_jit_load(paths_with_models: Paths, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, role: str, suffix: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    archive = torchscript_archive(tmp_path / f"model{suffix}")
    assert sniff(archive) == "torchscript"
    calls: list[object] = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a))
    cfg = write_settings(paths_with_models, {**SMALL, "models": {**SMALL["models"], role: str(archive)}})
    code = main(["generate", "--config", str(cfg), "--no-wallpaper", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "TorchScript" in err and f"models.{role}" in err and "Traceback" not in err
    assert calls == []
    assert not (tmp_path / "run").exists()


def test_plain_pt_state_dict_upscaler_works(paths_with_models: Paths, tmp_path: Path,
                                            tiny_upscaler_file: Path) -> None:
    from safetensors.torch import load_file

    file = tmp_path / "up.pt"
    # RealESRGAN releases nest the weights under "params_ema": spandrel's canonicalisation unwraps it.
    torch.save({"params_ema": dict(load_file(str(tiny_upscaler_file)))}, file)
    assert sniff(file) == "torch-zip"
    settings = {**SMALL, "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False}}}
    assert _generate(paths_with_models, "--upscaler", str(file), "--output", str(tmp_path / "run"),
                     settings=settings) == 0
    assert (tmp_path / "run" / "05_final_4k.png").is_file()


def test_model_names_are_not_looked_up_in_the_working_directory(
        paths_with_models: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_upscaler_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    shutil.copy(tiny_upscaler_file, cwd / "RealESRGAN_x4plus.safetensors")
    monkeypatch.chdir(cwd)
    settings = {**SMALL, "models": {**SMALL["models"], "upscaler": "RealESRGAN_x4plus.safetensors"}}
    cfg = write_settings(paths_with_models, settings)
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--output", str(tmp_path / "r")]) == 4
    err = capsys.readouterr().err
    assert str(paths_with_models.models_dir / "RealESRGAN_x4plus.safetensors") in err
    assert str(cwd) not in err
    # an explicit ./path typed on the command line is the shell's directory, and is honoured
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--no-enhance", "--output", str(tmp_path / "r1"),
                 "--upscaler", "./RealESRGAN_x4plus.safetensors"]) == 0
    # and the models folder is where a bare name is found
    paths_with_models.models_dir.mkdir(parents=True)
    shutil.copy(tiny_upscaler_file, paths_with_models.models_dir / "RealESRGAN_x4plus.safetensors")
    assert main(["generate", "--config", str(cfg), "--dry-run"]) == 0
    assert main(["generate", "--config", str(cfg), "--no-wallpaper", "--no-enhance",
                 "--output", str(tmp_path / "r2")]) == 0


@pytest.mark.parametrize("zip_format", [True, False])
def test_early_scan_reads_both_torch_save_formats(tmp_path: Path, zip_format: bool,
                                                  capsys: pytest.CaptureFixture[str], paths: Paths) -> None:
    from ai_wallpaper.catalog.pickle_scan import forbidden_globals

    marker = tmp_path / "marker"
    clean, evil = tmp_path / "clean.pth", tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2, dtype=torch.float16), "p": torch.nn.Parameter(torch.ones(1))}, clean,
               _use_new_zipfile_serialization=zip_format)
    torch.save({"w": torch.zeros(2), "x": _Payload(marker)}, evil, _use_new_zipfile_serialization=zip_format)
    assert forbidden_globals(clean) == []
    assert "pathlib.Path" in forbidden_globals(evil)
    # config validate names it, before any model loads
    cfg = write_settings(paths, {**SMALL, "models": {**SMALL["models"], "upscaler": str(evil)}})
    assert main(["config", "validate", "--config", str(cfg)]) == 1
    assert "pathlib.Path" in capsys.readouterr().out
    assert not marker.exists()
