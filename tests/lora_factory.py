"""Real LoRA-shaped files for tests.

- `make_peft_lora`: a genuine SDXL LoRA for the tiny model, made with peft
  (`init_lora_weights=False`, so it is not a no-op) and saved with diffusers'
  `StableDiffusionXLPipeline.save_lora_weights` - exactly what a user's file looks like.
- `write_keys`: a valid safetensors file with the given tensor names/shapes (numpy, no torch), for
  the header classifier: SD1.5, kohya SDXL, LoHa, LoKr, full checkpoints, non-LoRA files.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

ATTN = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_ATTN = ["q_proj", "k_proj", "v_proj", "out_proj"]


def write_keys(path: Path, shapes: dict[str, tuple[int, ...]], seed: int = 0) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}, str(path))
    return path


def sdxl_diffusers_keys(rank: int = 4) -> dict[str, tuple[int, ...]]:
    """diffusers/peft-format SDXL LoRA keys with real SDXL shapes (cross-attention width 2048)."""
    unet = "unet.down_blocks.1.attentions.0.transformer_blocks.1.attn2"
    return {f"{unet}.to_k.lora_A.weight": (rank, 2048), f"{unet}.to_k.lora_B.weight": (640, rank),
            "unet.up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": (rank, 1280),
            "unet.up_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": (1280, rank)}


def sdxl_kohya_keys(rank: int = 4) -> dict[str, tuple[int, ...]]:
    base = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k"
    te1 = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"
    te2 = "lora_te2_text_model_encoder_layers_0_self_attn_q_proj"
    return {f"{base}.lora_down.weight": (rank, 2048), f"{base}.lora_up.weight": (640, rank),
            f"{base}.alpha": (),
            f"{te1}.lora_down.weight": (rank, 768), f"{te1}.lora_up.weight": (768, rank),
            f"{te2}.lora_down.weight": (rank, 1280), f"{te2}.lora_up.weight": (1280, rank)}


def sd15_kohya_keys(rank: int = 4) -> dict[str, tuple[int, ...]]:
    base = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    te = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    return {f"{base}.lora_down.weight": (rank, 768), f"{base}.lora_up.weight": (320, rank),
            f"{base}.alpha": (),
            f"{te}.lora_down.weight": (rank, 768), f"{te}.lora_up.weight": (768, rank)}


def sd15_diffusers_keys(rank: int = 4) -> dict[str, tuple[int, ...]]:
    unet = "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k"
    return {f"{unet}.lora_A.weight": (rank, 768), f"{unet}.lora_B.weight": (1280, rank),
            "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight": (rank, 768),
            "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight": (768, rank)}


def loha_keys() -> dict[str, tuple[int, ...]]:
    base = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    return {f"{base}.hada_w1_a": (640, 4), f"{base}.hada_w1_b": (4, 640), f"{base}.hada_w2_a": (640, 4),
            f"{base}.hada_w2_b": (4, 640), f"{base}.alpha": ()}


def lokr_keys() -> dict[str, tuple[int, ...]]:
    base = "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"
    return {f"{base}.lokr_w1": (8, 8), f"{base}.lokr_w2": (80, 80), f"{base}.alpha": ()}


def plain_keys() -> dict[str, tuple[int, ...]]:
    return {"conv_first.weight": (16, 3, 3, 3), "conv_first.bias": (16,)}


def checkpoint_keys() -> dict[str, tuple[int, ...]]:
    return {"model.diffusion_model.input_blocks.0.0.weight": (8, 4, 3, 3)}


def make_peft_lora(pipe: Any, path: Path, *, seed: int, rank: int = 4, text_encoders: bool = True,
                   scale: float = 1.0) -> Path:
    """Train-free SDXL LoRA for `pipe`'s architecture (the pipe itself is not modified)."""
    import torch
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    torch.manual_seed(seed)

    def lora_of(module: Any, targets: list[str]) -> dict[str, Any]:
        clone = copy.deepcopy(module)
        config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=targets)
        clone.add_adapter(config)
        state = convert_state_dict_to_diffusers(get_peft_model_state_dict(clone))
        return {k: v * scale if ".up." in k or "lora_B" in k else v for k, v in state.items()}

    layers: dict[str, Any] = {"unet_lora_layers": lora_of(pipe.unet, ATTN)}
    if text_encoders:
        layers["text_encoder_lora_layers"] = lora_of(pipe.text_encoder, TEXT_ATTN)
        layers["text_encoder_2_lora_layers"] = lora_of(pipe.text_encoder_2, TEXT_ATTN)
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionXLPipeline.save_lora_weights(str(path.parent), weight_name=path.name, **layers)
    return path
