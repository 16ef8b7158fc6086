"""Build tiny random-weight SDXL models with real SDXL widths, for tests against a real InvokeAI server.

    python scripts/tiny_sdxl.py --dest FOLDER

FOLDER/tiny-sdxl-v1/ gets, once and atomically (filled beside its place, then renamed):
- base/: a StableDiffusionXLPipeline folder. InvokeAI tells SDXL from SD1/SD2/the refiner by the UNet's
  cross-attention width alone, so the widths are SDXL's (text encoders 768 + 1280 = 2048, pooled 1280,
  time ids 6 x 256) and everything else is as small as diffusers allows;
- refiner/: a StableDiffusionXLImg2ImgPipeline folder: only the second text encoder, cross-attention 1280,
  aesthetic-score time ids (5 x 256);
- lora.safetensors: a rank-4 LoRA on the base UNet's attention layers, in the peft/diffusers format that
  `StableDiffusionXLPipeline.load_lora_weights` reads;
- lora-kohya.safetensors: the same weights under kohya names, the only SD LoRA format InvokeAI 6.14.2's
  probe can tell the base of from a single file (it reads the width from `lora_unet_..._attn2_to_k`).
Images are noise; the models exist so the code paths run with no download. Built from fixed seeds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from ai_wallpaper.catalog.builtin import builtin_tokenizer_dir
from ai_wallpaper.core.atomic import replace_dir

# Bump when anything below changes, so a cached folder of the old recipe is never reused.
RECIPE_VERSION = 2
FOLDER = f"tiny-sdxl-v{RECIPE_VERSION}"
SEED = 20260
TE1_WIDTH, TE2_WIDTH = 768, 1280  # SDXL's: CLIP ViT-L and OpenCLIP bigG
TIME_EMBED = 256  # SDXL's addition_time_embed_dim
LORA_RANK = 4
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
LABEL = "tiny random-weight SDXL for tests (scripts/tiny_sdxl.py); images are not meaningful\n"


def _tokenizer(work: Path) -> Any:
    from transformers import CLIPTokenizer

    # The built-in model's byte-level vocabulary: nothing is downloaded.
    return CLIPTokenizer.from_pretrained(str(builtin_tokenizer_dir(work)), model_max_length=77)


def _text_encoder(tokenizer: Any, width: int, *, projection: bool, seed: int) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, hidden_size=width, intermediate_size=128,
        num_attention_heads=4, num_hidden_layers=1, vocab_size=len(tokenizer), max_position_embeddings=77,
        hidden_act="gelu", layer_norm_eps=1e-05, projection_dim=width,
    )
    torch.manual_seed(seed)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _unet(*, refiner: bool, seed: int) -> Any:
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    n_time_ids = 5 if refiner else 6  # the refiner conditions on an aesthetic score instead of a target size
    return UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=8,
        transformer_layers_per_block=(1, 1),
        addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=n_time_ids * TIME_EMBED + TE2_WIDTH,
        cross_attention_dim=TE2_WIDTH if refiner else TE1_WIDTH + TE2_WIDTH,
    )


def _vae(seed: int) -> Any:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    # Four levels so the latent scale factor is SDXL's 8. Mid-block attention like every real SDXL VAE:
    # InvokeAI's fp32 VAE path reaches into it (image_to_latents.py), and fails on a VAE without it.
    return AutoencoderKL(
        block_out_channels=[16, 16, 32, 32], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4, norm_num_groups=8, sample_size=1024,
        scaling_factor=0.13025,
    )


def _scheduler() -> Any:
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  timestep_spacing="leading", steps_offset=1)


def build_base(tokenizer: Any) -> Any:
    from diffusers import StableDiffusionXLPipeline

    return StableDiffusionXLPipeline(
        vae=_vae(SEED), unet=_unet(refiner=False, seed=SEED + 1), scheduler=_scheduler(),
        text_encoder=_text_encoder(tokenizer, TE1_WIDTH, projection=False, seed=SEED + 2),
        text_encoder_2=_text_encoder(tokenizer, TE2_WIDTH, projection=True, seed=SEED + 3),
        tokenizer=tokenizer, tokenizer_2=tokenizer,
    )


def build_refiner(tokenizer: Any) -> Any:
    from diffusers import StableDiffusionXLImg2ImgPipeline

    return StableDiffusionXLImg2ImgPipeline(
        vae=_vae(SEED + 10), unet=_unet(refiner=True, seed=SEED + 11), scheduler=_scheduler(),
        text_encoder=None, tokenizer=None,
        text_encoder_2=_text_encoder(tokenizer, TE2_WIDTH, projection=True, seed=SEED + 13),
        tokenizer_2=tokenizer, requires_aesthetics_score=True, force_zeros_for_empty_prompt=False,
    )


def lora_layers(unet: Any) -> dict[str, Any]:
    """peft LoRA weights for `unet`'s attention layers, under diffusers' names (`<module>.lora.down.weight`,
    without the `unet.` prefix), as diffusers' own training scripts save them."""
    import copy

    import torch
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(SEED + 20)
    clone = copy.deepcopy(unet)
    # init_lora_weights=False: both matrices random, so applying the LoRA changes the output.
    clone.add_adapter(LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, init_lora_weights=False,
                                 target_modules=LORA_TARGETS))
    return dict(convert_state_dict_to_diffusers(get_peft_model_state_dict(clone)))


def kohya_lora(layers: dict[str, Any]) -> dict[str, Any]:
    """The same LoRA under kohya names (`lora_unet_<module with _>.lora_down/lora_up.weight` + `.alpha`)."""
    import torch

    out: dict[str, Any] = {}
    for key, tensor in layers.items():
        module, _, kind = key.rpartition(".lora.")  # diffusers names: <module>.lora.down.weight / .lora.up.weight
        name = "lora_unet_" + module.replace(".", "_")
        out[f"{name}.lora_{kind}"] = tensor.contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(LORA_RANK))
    return out


def _fill(tmp: Path) -> None:
    from diffusers import StableDiffusionXLPipeline
    from safetensors.torch import save_file

    work = tmp / "_work"
    tokenizer = _tokenizer(work)
    base = build_base(tokenizer)
    base.save_pretrained(tmp / "base", safe_serialization=True)
    build_refiner(tokenizer).save_pretrained(tmp / "refiner", safe_serialization=True)
    _add_slow_tokenizer_files(work / "tokenizer", tmp)
    layers = lora_layers(base.unet)
    StableDiffusionXLPipeline.save_lora_weights(str(tmp), weight_name="lora.safetensors", unet_lora_layers=layers)
    save_file(kohya_lora(layers), str(tmp / "lora-kohya.safetensors"))
    shutil.rmtree(work)
    (tmp / "README.txt").write_text(LABEL, encoding="utf-8")


def _add_slow_tokenizer_files(source: Path, tmp: Path) -> None:
    # transformers 5 saves only tokenizer.json; readers that load the slow CLIPTokenizer need these too.
    for folder in (tmp / "base" / "tokenizer", tmp / "base" / "tokenizer_2", tmp / "refiner" / "tokenizer_2"):
        for name in ("vocab.json", "merges.txt"):
            if not (folder / name).exists():
                shutil.copyfile(source / name, folder / name)


def ensure(dest: Path) -> Path:
    return replace_dir(dest / FOLDER, _fill)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args()
    print(ensure(args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
