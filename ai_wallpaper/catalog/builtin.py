"""The built-in offline self-test models: tiny random-weight SDXL (base + refiner) and ESRGAN.

They are built deterministically from a fixed seed, saved to the cache dir once, and then
loaded through exactly the same code as a real model on disk (`render/model_loading.py`). Their images are
NOT meaningful: they exist so the whole product can be run and tested with no download.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ai_wallpaper.core.atomic import replace_dir

BUILTIN_PREFIX = "builtin:"
BUILTIN_NAMES = ("tiny", "tiny-refiner")
SELF_TEST_LABEL = "built-in self-test model (random weights; images are not meaningful)"
# Bump when the recipe changes so stale caches are rebuilt rather than silently reused.
RECIPE_VERSION = 2

_TE1_WIDTH = 32
_TE2_WIDTH = 64
_TIME_EMBED = 8
_TOKENIZER_FILES = ("vocab.json", "merges.txt")


def is_builtin(spec: str | None) -> bool:
    return bool(spec) and str(spec).startswith(BUILTIN_PREFIX)


def builtin_tokenizer_dir(cache_dir: Path) -> Path:
    """The built-in model's tokenizer as a folder of its own, written on first use without torch.

    `plan` counts prompt tokens with it: it is the vocabulary of the built model folders' tokenizers,
    without the torch import and minutes that building those folders costs.
    """
    return replace_dir(cache_dir / "tokenizer", _write_tokenizer, ready=_has_tokenizer_files)


def _has_tokenizer_files(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _TOKENIZER_FILES)


def _write_tokenizer(directory: Path) -> None:
    """A byte-level BPE vocab (256 byte symbols + BOS/EOS); no merges needed for correctness."""
    directory.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    vocab_file, merges_file = _TOKENIZER_FILES
    (directory / vocab_file).write_text(json.dumps(vocab), encoding="utf-8")
    (directory / merges_file).write_text("#version: 0.2\n", encoding="utf-8")


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> printable-unicode mapping (256 symbols)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for _, c in sorted(zip(printable, codes, strict=True))]


def build_tiny_sdxl_components(
    seed: int = 0, *, refiner: bool = False, tokenizer_dir: Path | None = None
) -> dict[str, Any]:
    """Random-weight SDXL components, small enough to run 1920x1024 on a CPU in seconds.

    Layout (docs/ARCHITECTURE.md §5): text encoders of different widths (32, 64), attention only at
    the lowest UNet level, a 4-level VAE so the latent scale factor is 8.
    """
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    own_tmp = tokenizer_dir is None
    tok_dir = Path(tempfile.mkdtemp(prefix="aiw-tok-")) if own_tmp else tokenizer_dir
    assert tok_dir is not None
    _write_tokenizer(tok_dir)
    # Trap: CLIPTokenizer(vocab_file=...) silently ignores the files in transformers 5.x.
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=77)
    if own_tmp:
        shutil.rmtree(tok_dir, ignore_errors=True)

    torch.manual_seed(seed)
    n_time_ids = 5 if refiner else 6  # refiner conditions on aesthetic score instead of target size
    cross_dim = _TE2_WIDTH if refiner else _TE1_WIDTH + _TE2_WIDTH
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=_TIME_EMBED,
        transformer_layers_per_block=(1, 1, 1),
        projection_class_embeddings_input_dim=n_time_ids * _TIME_EMBED + _TE2_WIDTH,
        cross_attention_dim=cross_dim,
        norm_num_groups=8,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[16, 16, 32, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        norm_num_groups=8,
        # diffusers' VAE tiling uses sample_size as its tile: 128 would cut an 8K image into
        # thousands of tiles. 1024 matches the real SDXL VAE.
        sample_size=1024,
        # Full-resolution self-attention in the VAE mid block costs minutes per 8K encode on a CPU
        # (16k tokens per 1024 px tile); the self-test model does not need it.
        mid_block_add_attention=False,
        scaling_factor=0.13025,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading",
        steps_offset=1,
    )

    def text_config(width: int) -> CLIPTextConfig:
        return CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, hidden_size=width, intermediate_size=width * 2,
            layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2,
            vocab_size=len(tokenizer), max_position_embeddings=77, hidden_act="gelu",
            projection_dim=width,
        )

    torch.manual_seed(seed + 2)
    text_encoder = None if refiner else CLIPTextModel(text_config(_TE1_WIDTH))
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(text_config(_TE2_WIDTH))
    components: dict[str, Any] = {
        "unet": unet,
        "scheduler": scheduler,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": None if refiner else tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer,
    }
    if refiner:
        components["requires_aesthetics_score"] = True
        components["force_zeros_for_empty_prompt"] = False
    else:
        components["image_encoder"] = None
        components["feature_extractor"] = None
    return components


def build_tiny_esrgan(seed: int = 0) -> Any:
    """A random-weight ESRGAN x4 (spandrel's architecture) that spandrel detects from its keys."""
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    model = ESRGAN(in_nc=3, out_nc=3, num_filters=16, num_blocks=2, scale=4)
    # Pure random weights turn any picture into near-black noise, which makes the self-test's
    # later stages meaningless. So the RGB path through the head, upsamplers and tail is an
    # identity (a nearest-neighbour 4x) and the random residual trunk adds a little texture.
    state = model.state_dict()
    with torch.no_grad():
        for key in ("model.0", "model.3", "model.6", "model.8", "model.10"):
            weight, bias = state[f"{key}.weight"], state[f"{key}.bias"]
            weight.mul_(0.02)
            bias.zero_()
            for c in range(3):
                weight[c, c, 1, 1] = 1.0
        for key, value in state.items():
            if key.startswith("model.1.") and key.endswith("weight"):
                value.mul_(0.1)
    return model


def builtin_sdxl_path(cache_dir: Path, name: str) -> Path:
    return cache_dir / f"sdxl-{name}-v{RECIPE_VERSION}"


def builtin_upscaler_path(cache_dir: Path) -> Path:
    return cache_dir / f"esrgan-tiny-v{RECIPE_VERSION}" / "esrgan-tiny-x4.safetensors"


def ensure_builtin_sdxl(cache_dir: Path, name: str = "tiny") -> Path:
    """Return a diffusers directory for `builtin:<name>`, building it on first use."""
    if name not in BUILTIN_NAMES:
        raise ValueError(f"unknown built-in model {name!r}; choose from {', '.join(BUILTIN_NAMES)}")
    target = builtin_sdxl_path(cache_dir, name)

    def fill(tmp: Path) -> None:
        from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

        refiner = name == "tiny-refiner"
        components = build_tiny_sdxl_components(seed=0 if not refiner else 100, refiner=refiner,
                                                tokenizer_dir=tmp / "_tok")
        pipe: Any = (StableDiffusionXLImg2ImgPipeline if refiner else StableDiffusionXLPipeline)(**components)
        pipe.save_pretrained(tmp, safe_serialization=True)
        shutil.rmtree(tmp / "_tok", ignore_errors=True)
        (tmp / "SELF_TEST_MODEL.txt").write_text(SELF_TEST_LABEL + "\n", encoding="utf-8")

    return replace_dir(target, fill)


def ensure_builtin_upscaler(cache_dir: Path) -> Path:
    """Return a .safetensors file for the built-in ESRGAN, building it on first use."""
    target_dir = builtin_upscaler_path(cache_dir).parent

    def fill(tmp: Path) -> None:
        from safetensors.torch import save_file

        model = build_tiny_esrgan()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "esrgan-tiny-x4.safetensors"))
        (tmp / "SELF_TEST_MODEL.txt").write_text(SELF_TEST_LABEL + "\n", encoding="utf-8")

    return replace_dir(target_dir, fill) / builtin_upscaler_path(cache_dir).name
