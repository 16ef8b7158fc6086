"""Full-size SDXL base/refiner and RealESRGAN_x4plus built from bench/configs/*.json with random weights.

Timing does not depend on the weights, so a GPU benchmark needs no download: the architectures
are instantiated from the public configs kept in bench/configs, directly on the target device in
the target dtype (no fp32 copy in host RAM). The tokenizers are the built-in byte-level one
(`ai_wallpaper.catalog.builtin._write_tokenizer`): token ids stay < 514, well inside the 49408-row
embedding, and prompt length (77 tokens, padded) is what costs time, not the vocabulary.

`count_parameters(name)` instantiates on the meta device (no memory) to check the configs.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterator

    import torch

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SdxlKind = Literal["base", "refiner"]
SDXL_CONFIGS: dict[str, str] = {"base": "sdxl-base-1.0.json", "refiner": "sdxl-refiner-1.0.json"}
UPSCALER_CONFIG = "realesrgan-x4plus.json"
# The public models' parameter counts (their fp16 safetensors sizes / 2: UNet 5.14 GB, refiner UNet
# 4.52 GB, VAE 167 MB, CLIP-L 246 MB, OpenCLIP-bigG 1.39 GB; RealESRGAN_x4plus.pth 67 MB in fp32).
EXPECTED_PARAMS: dict[str, int] = {
    "base.unet": 2_567_463_684, "refiner.unet": 2_259_526_660, "base.vae": 83_653_863,
    "base.text_encoder": 123_060_480, "base.text_encoder_2": 694_659_840, "upscaler": 16_697_987,
}


def load_config(name: str) -> dict[str, Any]:
    """A JSON config from bench/configs, with `_comment` keys dropped."""
    file = CONFIG_DIR / name
    if not file.is_file():
        raise FileNotFoundError(f"benchmark config {file} is missing")
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return _strip_comments(data)


def _strip_comments(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_comments(v) for k, v in node.items() if k != "_comment"}
    return node


@contextmanager
def _building(device: str | torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Create parameters directly on `device` in `dtype` (default-dtype + default-device context)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), torch.no_grad():
            yield
    finally:
        torch.set_default_dtype(old)


def _text_encoder(cls: Any, config: dict[str, Any], tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig

    fields = {k: v for k, v in config.items() if k != "_class_name"}
    cfg = CLIPTextConfig(**fields, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return cls(cfg)


def builtin_tokenizer() -> Any:
    from transformers import CLIPTokenizer

    from ai_wallpaper.catalog.builtin import _write_tokenizer

    with tempfile.TemporaryDirectory(prefix="bench-tok-") as tmp:
        _write_tokenizer(Path(tmp))
        # Trap (docs/ARCHITECTURE.md §5): CLIPTokenizer(vocab_file=...) ignores the files in transformers 5.x.
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77)


def build_sdxl_components(kind: SdxlKind, device: str | torch.device = "cpu",
                          dtype: torch.dtype | None = None, seed: int = 0) -> dict[str, Any]:
    """The pipeline components of SDXL base/refiner 1.0 with random weights, on `device` in `dtype`."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    dtype = dtype or torch.float32
    config = load_config(SDXL_CONFIGS[kind])
    tokenizer = builtin_tokenizer() if str(device) != "meta" else None
    if str(device) != "meta":
        torch.manual_seed(seed)
    with _building(device, dtype):
        unet = UNet2DConditionModel.from_config(config["unet"])
        vae = AutoencoderKL.from_config(config["vae"])
        tok = tokenizer or _MetaTokenizer()
        te2 = _text_encoder(CLIPTextModelWithProjection, config["text_encoder_2"], tok)
        te1 = _text_encoder(CLIPTextModel, config["text_encoder"], tok) if "text_encoder" in config else None
    components: dict[str, Any] = {
        "unet": unet.eval(), "vae": vae.eval(), "text_encoder": te1.eval() if te1 is not None else None,
        "text_encoder_2": te2.eval(), "tokenizer": tokenizer if te1 is not None else None,
        "tokenizer_2": tokenizer,
        "scheduler": EulerDiscreteScheduler.from_config(config["scheduler"]),
    }
    components.update(config.get("pipeline", {}))
    if kind == "base":
        components["image_encoder"] = None
        components["feature_extractor"] = None
    return components


class _MetaTokenizer:
    """Token ids for building on the meta device (no tokenizer files are needed to count)."""

    bos_token_id, eos_token_id, pad_token_id = 512, 513, 513


def build_sdxl_pipe(kind: SdxlKind, device: str | torch.device, dtype: torch.dtype, seed: int = 0) -> Any:
    """StableDiffusionXLPipeline (base) or StableDiffusionXLImg2ImgPipeline (refiner), random weights."""
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    components = build_sdxl_components(kind, device, dtype, seed)
    cls: Any = StableDiffusionXLPipeline if kind == "base" else StableDiffusionXLImg2ImgPipeline
    pipe = cls(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_esrgan_module(device: str | torch.device = "cpu", seed: int = 0) -> Any:
    """RealESRGAN_x4plus's RRDBNet (spandrel's ESRGAN class) with random weights, fp32."""
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    config = load_config(UPSCALER_CONFIG)
    arch = config.pop("architecture")
    if arch != "ESRGAN":
        raise ValueError(f"{UPSCALER_CONFIG}: only the ESRGAN architecture is supported, got {arch!r}")
    if str(device) != "meta":
        torch.manual_seed(seed)
    with _building(device, torch.float32):
        return ESRGAN(**config)


def build_upscaler(device: str | torch.device, half: bool, seed: int = 0) -> Any:
    """A spandrel ImageModelDescriptor for the random RRDBNet, like `models.load_upscaler` returns."""
    import torch
    from spandrel import ModelLoader

    module = build_esrgan_module("cpu", seed)  # 67 MB in fp32: building on the host is cheap
    descriptor = ModelLoader().load_from_state_dict(module.state_dict()).eval()
    descriptor.to(device)
    if half and str(device).startswith("cuda") and descriptor.supports_half:
        descriptor.to(torch.float16)
    return descriptor


def count_parameters(name: str) -> dict[str, int]:
    """Parameter counts per component, instantiated on the meta device (costs no memory).

    `name` is "base", "refiner" or "upscaler"; keys are like "base.unet".
    """
    if name == "upscaler":
        return {"upscaler": sum(p.numel() for p in build_esrgan_module("meta").parameters())}
    components = build_sdxl_components(name, "meta")  # type: ignore[arg-type]
    counts = {}
    for key in ("unet", "vae", "text_encoder", "text_encoder_2"):
        module = components.get(key)
        if module is not None:
            counts[f"{name}.{key}"] = sum(p.numel() for p in module.parameters())
    return counts


def check_build(kind: SdxlKind, device: str = "cpu", dtype: torch.dtype | None = None,
                latent: int = 16) -> dict[str, Any]:
    """Build a full-size pipe and push a tiny input through every part once: the prompt through
    both text encoders, one UNet call on a `latent`-sized latent with the real conditioning
    shapes (time ids, pooled embeds), one VAE decode. Catches config mistakes before a GPU
    session without full-size inference. Returns shapes and dtypes."""
    import torch

    dtype = dtype or torch.bfloat16
    pipe = build_sdxl_pipe(kind, device, dtype)
    with torch.inference_mode():
        embeds, _, pooled, _ = pipe.encode_prompt("a lighthouse", device=device,
                                                  do_classifier_free_guidance=False)
        n_ids = 6 if kind == "base" else 5  # the refiner conditions on an aesthetic score, not a target size
        time_ids = torch.zeros(1, n_ids, dtype=dtype, device=device)
        sample = torch.randn(1, 4, latent, latent, dtype=dtype, device=device)
        t = torch.tensor([500], device=device)
        pred = pipe.unet(sample, t, encoder_hidden_states=embeds,
                         added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
        image = pipe.vae.decode(sample / pipe.vae.config.scaling_factor).sample
    return {"embeds": tuple(embeds.shape), "pooled": tuple(pooled.shape), "unet_out": tuple(pred.shape),
            "vae_out": tuple(image.shape), "dtype": str(pred.dtype)}


def main() -> None:
    """Print the parameter counts of every config next to the public models' counts;
    with --check also build base and refiner on the CPU in bf16 and run a tiny input through."""
    import sys

    if "--check" in sys.argv:
        print("base", check_build("base"))
        print("refiner", check_build("refiner"))
        up = build_upscaler("cpu", half=False)
        print("upscaler", up.architecture.name, f"x{up.scale}", sum(p.numel() for p in up.model.parameters()))
    print(f"{'component':<22} {'parameters':>15} {'expected':>15}")
    for name in ("base", "refiner", "upscaler"):
        for key, count in count_parameters(name).items():
            expected = EXPECTED_PARAMS.get(key) or EXPECTED_PARAMS.get(key.replace("refiner.", "base."))
            shown = f"{expected / 1e6:,.1f} M" if expected else "-"
            print(f"{key:<22} {count / 1e6:>13,.1f} M {shown:>15}")


if __name__ == "__main__":
    main()
