"""Single-file SDXL checkpoints: the tiny model written in the original (Stability) key layout loads with
from_single_file(config=<local dir>) offline and paints the same image as the diffusers directory.

The converter below is test-only: it inverts diffusers' own single-file conversion (checked by running
diffusers' forward converters on its output and comparing with the original state dicts).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from ai_wallpaper.catalog.model_sources import resolve_source
from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.model_loading import load_sdxl

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}
_UNET_SIMPLE = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
                "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_OPENCLIP_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc",
                   "mlp.fc2": "mlp.c_proj", "self_attn.out_proj": "attn.out_proj"}


def _resnet(rest: list[str]) -> str:
    return ".".join([_RESNET.get(rest[0], rest[0]), *rest[1:]])


def _vae_resnet(rest: list[str]) -> str:
    return ".".join(rest).replace("conv_shortcut", "nin_shortcut")


def unet_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    per = config["layers_per_block"] + 1  # LDM numbers resnets and the down/upsampler in one sequence
    up_with_attn = {i for i, t in enumerate(config["up_block_types"]) if "CrossAttn" in t}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = None
        for d, ldm in _UNET_SIMPLE.items():
            if key.startswith(d + "."):
                new = ldm + key[len(d):]
        p = key.split(".")
        if p[0] == "down_blocks":
            b, kind = int(p[1]), p[2]
            if kind == "downsamplers":
                new = f"input_blocks.{1 + b * per + per - 1}.0.op." + ".".join(p[5:])
            else:
                idx = 1 + b * per + int(p[3])
                new = f"input_blocks.{idx}.0." + _resnet(p[4:]) if kind == "resnets" else \
                    f"input_blocks.{idx}.1." + ".".join(p[4:])
        elif p[0] == "mid_block":
            mid = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[f"{p[1]}.{p[2]}"]
            rest = _resnet(p[3:]) if p[1] == "resnets" else ".".join(p[3:])
            new = f"middle_block.{mid}.{rest}"
        elif p[0] == "up_blocks":
            b, kind = int(p[1]), p[2]
            if kind == "upsamplers":
                slot = 2 if b in up_with_attn else 1  # after the attention when the block has one
                new = f"output_blocks.{b * per + per - 1}.{slot}.conv." + ".".join(p[5:])
            else:
                idx = b * per + int(p[3])
                new = f"output_blocks.{idx}.0." + _resnet(p[4:]) if kind == "resnets" else \
                    f"output_blocks.{idx}.1." + ".".join(p[4:])
        assert new is not None, f"unmapped UNet key {key}"
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(state: dict[str, torch.Tensor], config: dict[str, Any]) -> dict[str, torch.Tensor]:
    n_up = len(config["up_block_types"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        p = key.split(".")
        side, rest = p[0], p[1:]
        if rest[0] == "conv_norm_out":
            new = ".".join([side, "norm_out", *rest[1:]])
        elif rest[0] == "down_blocks":
            i = rest[1]
            if rest[2] == "downsamplers":
                new = f"{side}.down.{i}.downsample.conv." + ".".join(rest[5:])
            else:
                new = f"{side}.down.{i}.block.{rest[3]}." + _vae_resnet(rest[4:])
        elif rest[0] == "up_blocks":
            level = n_up - 1 - int(rest[1])  # LDM numbers decoder levels from the bottom
            if rest[2] == "upsamplers":
                new = f"{side}.up.{level}.upsample.conv." + ".".join(rest[5:])
            else:
                new = f"{side}.up.{level}.block.{rest[3]}." + _vae_resnet(rest[4:])
        elif rest[0] == "mid_block" and rest[1] == "resnets":
            new = f"{side}.mid.block_{int(rest[2]) + 1}." + ".".join(rest[3:])
        elif rest[0] == "mid_block":
            inner = ".".join(rest[3:])
            for d, ldm in _VAE_ATTN.items():
                if inner.startswith(d + "."):
                    inner = ldm + inner[len(d):]
            new = f"{side}.mid.attn_1.{inner}"
            if inner.endswith("weight") and value.ndim == 2:
                value = value[:, :, None, None]  # LDM stores the attention projections as 1x1 convs
        else:
            new = key
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prefix = "conditioner.embedders.0.transformer."
    return {prefix + (k if k.startswith("text_model.") else "text_model." + k): v for k, v in state.items()}


def openclip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {
        prefix + "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
        prefix + "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
        prefix + "ln_final.weight": state["text_model.final_layer_norm.weight"],
        prefix + "ln_final.bias": state["text_model.final_layer_norm.bias"],
        prefix + "text_projection": state["text_projection.weight"].T.contiguous(),
    }
    layers = {int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.layers.")}
    for n in sorted(layers):
        src = f"text_model.encoder.layers.{n}."
        dst = f"{prefix}transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([state[src + f"self_attn.{q}_proj.{kind}"]
                                                           for q in ("q", "k", "v")])
            for d, ldm in _OPENCLIP_LAYER.items():
                out[dst + f"{ldm}.{kind}"] = state[src + f"{d}.{kind}"]
    return out


def write_single_file(model_dir: Path, target: Path, *, refiner: bool) -> Path:
    """Write a diffusers SDXL directory as one original-layout .safetensors checkpoint."""
    def part(name: str, file: str) -> dict[str, torch.Tensor]:
        return load_file(str(model_dir / name / file))

    def config(name: str) -> dict[str, Any]:
        return dict(json.loads((model_dir / name / "config.json").read_text()))

    ckpt = unet_to_ldm(part("unet", "diffusion_pytorch_model.safetensors"), config("unet"))
    ckpt |= vae_to_ldm(part("vae", "diffusion_pytorch_model.safetensors"), config("vae"))
    ckpt |= openclip_to_ldm(part("text_encoder_2", "model.safetensors"),
                            "conditioner.embedders.0.model." if refiner else "conditioner.embedders.1.model.")
    if not refiner:
        ckpt |= clip_to_ldm(part("text_encoder", "model.safetensors"))
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().clone() for k, v in ckpt.items()}, str(target))
    return target


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory: pytest.TempPathFactory, tiny_sdxl_dir: Path, tiny_refiner_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("ckpt")
    write_single_file(tiny_sdxl_dir, out / "tiny-sdxl.safetensors", refiner=False)
    write_single_file(tiny_refiner_dir, out / "tiny-refiner.safetensors", refiner=True)
    return out


@pytest.fixture
def mpaths(paths: Paths, builtin_cache: Path, tiny_sdxl_dir: Path, tiny_refiner_dir: Path,
           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A private tree whose built-in model cache is the session one (no rebuilds) and an empty HF cache."""
    paths.builtin_models_dir.parent.mkdir(parents=True, exist_ok=True)
    paths.builtin_models_dir.symlink_to(builtin_cache, target_is_directory=True)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    return paths


def _image(pipe: Any, **kwargs: Any) -> np.ndarray:
    out = pipe("a lighthouse at dusk", num_inference_steps=2, generator=torch.Generator().manual_seed(7),
               output_type="np", **kwargs)
    return np.asarray(out.images[0])


# --- tests -----------------------------------------------------------------------------------------


def test_converter_inverts_diffusers_own_conversion(ckpt_dir: Path, tiny_sdxl_dir: Path) -> None:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    ckpt = load_file(str(ckpt_dir / "tiny-sdxl.safetensors"))
    for name, convert in (("unet", convert_ldm_unet_checkpoint), ("vae", convert_ldm_vae_checkpoint)):
        original = load_file(str(tiny_sdxl_dir / name / "diffusion_pytorch_model.safetensors"))
        config = json.loads((tiny_sdxl_dir / name / "config.json").read_text())
        back = convert(ckpt, config)
        assert set(back) == set(original), name
        assert all(torch.equal(back[k], original[k]) for k in original), name


def test_single_file_base_matches_directory(ckpt_dir: Path, mpaths: Paths) -> None:
    file = ckpt_dir / "tiny-sdxl.safetensors"
    models = ModelSettings(base=str(file))
    source = resolve_source(str(file), "base", models, mpaths)
    assert (source.kind, source.config) == ("file", "builtin:tiny")
    assert source.config_origin == "built-in tiny layout"
    from_file = load_sdxl(source, "base", models, mpaths)
    from_dir = load_sdxl("builtin:tiny", "base", ModelSettings(base="builtin:tiny"), mpaths)
    assert type(from_file).__name__ == "StableDiffusionXLPipeline"
    a, b = _image(from_file, width=64, height=64), _image(from_dir, width=64, height=64)
    assert a.shape == (64, 64, 3)
    assert np.array_equal(a, b)


def test_single_file_refiner_with_explicit_config_matches_directory(
        ckpt_dir: Path, mpaths: Paths, tiny_refiner_dir: Path, tmp_path: Path) -> None:
    # An explicit refiner_config (a configs-only copy: no weights) is used instead of any fallback.
    config_dir = tmp_path / "refiner-configs"
    shutil.copytree(tiny_refiner_dir, config_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    file = ckpt_dir / "tiny-refiner.safetensors"
    models = ModelSettings(base="builtin:tiny", refiner=str(file), refiner_config=str(config_dir))
    source = resolve_source(str(file), "refiner", models, mpaths)
    assert (source.config, source.config_origin) == (str(config_dir), "models.refiner_config")
    from_file = load_sdxl(source, "refiner", models, mpaths)
    from_dir = load_sdxl("builtin:tiny-refiner", "refiner", models, mpaths)
    assert type(from_file).__name__ == "StableDiffusionXLImg2ImgPipeline"
    init = torch.linspace(0, 1, 3 * 64 * 64).reshape(1, 3, 64, 64)
    a = _image(from_file, image=init, strength=0.5)
    assert np.array_equal(a, _image(from_dir, image=init, strength=0.5))


def test_single_file_of_the_wrong_role_is_rejected(ckpt_dir: Path, mpaths: Paths) -> None:
    base_file, refiner_file = ckpt_dir / "tiny-sdxl.safetensors", ckpt_dir / "tiny-refiner.safetensors"
    with pytest.raises(ModelError, match=r"models\.refiner: .*tiny-sdxl.* is an SDXL base model"):
        resolve_source(str(base_file), "refiner", ModelSettings(), mpaths)
    with pytest.raises(ModelError, match=r"models\.base: .*tiny-refiner.* is an SDXL refiner"):
        resolve_source(str(refiner_file), "base", ModelSettings(), mpaths)


def _fake_checkpoint(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return path


def test_real_size_single_file_without_config_asks_for_base_config(mpaths: Paths, tmp_path: Path) -> None:
    # SDXL-1.0-sized layout (conv_in 320, OpenCLIP width 1280): the tiny built-in configs would be wrong,
    # nothing is cached and downloads are off, so the user must name a config directory.
    file = _fake_checkpoint(tmp_path / "sd_xl_base.safetensors", {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
        "conditioner.embedders.1.model.positional_embedding": (77, 1280),
    })
    with pytest.raises(ModelError) as err:
        resolve_source(str(file), "base", ModelSettings(base=str(file)), mpaths)
    assert "models.base: no diffusers config found" in err.value.message
    assert err.value.hint is not None and "models.base_config" in err.value.hint
    # With downloads allowed only the configs of the official repo would be fetched.
    source = resolve_source(str(file), "base", ModelSettings(base=str(file), allow_download=True), mpaths)
    assert source.config == "stabilityai/stable-diffusion-xl-base-1.0"


def test_non_sdxl_single_files_are_rejected(mpaths: Paths, tmp_path: Path) -> None:
    sd15 = _fake_checkpoint(tmp_path / "sd15.safetensors", {
        "model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3),
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 8),
    })
    with pytest.raises(ModelError, match=r"Stable Diffusion 1\.x/2\.x checkpoint, not SDXL"):
        resolve_source(str(sd15), "base", ModelSettings(), mpaths)
    lora = _fake_checkpoint(tmp_path / "lora.safetensors",
                            {"lora_unet_down_blocks_0.lora_down.weight": (4, 8)})
    with pytest.raises(ModelError, match="no Stable Diffusion UNet"):
        resolve_source(str(lora), "base", ModelSettings(), mpaths)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00\x01")
    with pytest.raises(ModelError, match=r"not a readable \.safetensors file"):
        resolve_source(str(broken), "base", ModelSettings(), mpaths)
