"""Applying a LoRA stack for real on the tiny SDXL pipeline, and removing it without a trace."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.render.lora_apply import adapter_names, applied_loras
from ai_wallpaper.scene.plan import LoraChoice
from tests import lora_factory as lf


@pytest.fixture(scope="module")
def pipe(tiny_sdxl_dir: Path) -> Any:
    """Our own pipeline: these tests load adapters, so the shared tiny_pipe is left alone."""
    from diffusers import StableDiffusionXLPipeline

    p = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_dir))
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def lora_files(pipe: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("loras")
    return {"full": lf.make_peft_lora(pipe, d / "full.safetensors", seed=1),
            "unet": lf.make_peft_lora(pipe, d / "unet.safetensors", seed=2, text_encoders=False),
            "loha": lf.write_keys(d / "loha.safetensors", lf.loha_keys())}


def choice(path: Path, weight: float, name: str | None = None) -> LoraChoice:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoraChoice(name=name or path.stem, file=str(path), sha256=digest, type="style", weight=weight)


def render(pipe: Any) -> np.ndarray:
    import torch

    out = pipe("a lake at dawn", negative_prompt="blurry", num_inference_steps=2, width=128, height=128,
               generator=torch.Generator().manual_seed(0), output_type="np")
    return np.asarray(out.images[0])


def fingerprint(pipe: Any) -> tuple[int, int, tuple[str, ...]]:
    modules = [*pipe.unet.modules(), *pipe.text_encoder.modules(), *pipe.text_encoder_2.modules()]
    models = (pipe.unet, pipe.text_encoder, pipe.text_encoder_2)
    params = sum(p.numel() for m in models for p in m.parameters())
    return params, len(modules), tuple(sorted({type(m).__module__.split(".")[0] for m in modules}))


def test_the_file_is_a_real_sdxl_lora(lora_files: dict[str, Path]) -> None:
    from ai_wallpaper.scene.lora_library import check_file

    full = check_file(lora_files["full"])
    assert full.ok and full.targets == ("unet", "text_encoder", "text_encoder_2"), full
    assert check_file(lora_files["unet"]).targets == ("unet",)


def test_stack_changes_the_image_and_removal_restores_it_bit_for_bit(pipe: Any,
                                                                      lora_files: dict[str, Path]) -> None:
    base = render(pipe)
    before = fingerprint(pipe)
    with applied_loras(pipe, [choice(lora_files["full"], 0.8)]):
        strong = render(pipe)
        assert len(adapter_names(pipe)) == 1
        assert fingerprint(pipe) != before  # the LoRA layers are really there
    with applied_loras(pipe, [choice(lora_files["full"], 0.3)]):
        weak = render(pipe)
    after = render(pipe)
    assert np.abs(strong - base).max() > 1e-3
    assert np.abs(weak - base).max() > 1e-4
    assert np.abs(strong - weak).max() > 1e-4  # different weights, different image
    assert np.abs(strong - base).mean() > np.abs(weak - base).mean()  # and more weight, more change
    assert np.array_equal(after, base)  # bit for bit
    assert fingerprint(pipe) == before and adapter_names(pipe) == set()


def test_text_encoder_part_changes_the_prompt_embeddings(pipe: Any, lora_files: dict[str, Path]) -> None:
    import torch

    def embeds() -> list[Any]:
        pe, _, pooled, _ = pipe.encode_prompt("a lake", do_classifier_free_guidance=False)
        return [pe, pooled]

    plain = embeds()
    with applied_loras(pipe, [choice(lora_files["full"], 1.0)]):
        patched = embeds()
    assert all(not torch.equal(a, b) for a, b in zip(plain, patched, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(plain, embeds(), strict=True))


def test_switching_stacks_does_not_grow_or_leak(pipe: Any, lora_files: dict[str, Path]) -> None:
    base = render(pipe)
    before = fingerprint(pipe)
    full, unet = lora_files["full"], lora_files["unet"]
    stacks = [[choice(full, 0.7)], [choice(full, 0.5), choice(unet, 0.6)], [choice(unet, 1.0)],
              [choice(unet, 0.4), choice(full, 0.9)], [choice(full, 0.2, name="again")]]
    images = []
    for stack in stacks:
        with applied_loras(pipe, stack):
            assert len(adapter_names(pipe)) == len(stack)
            images.append(render(pipe))
        assert adapter_names(pipe) == set() and fingerprint(pipe) == before
    assert all(np.abs(img - base).max() > 1e-4 for img in images)
    assert np.abs(images[1] - images[3]).max() > 1e-4  # same LoRAs, other weights: other image
    assert np.array_equal(render(pipe), base)


def test_removed_even_when_the_run_fails(pipe: Any, lora_files: dict[str, Path]) -> None:
    before = fingerprint(pipe)
    with pytest.raises(RuntimeError, match="boom"), applied_loras(pipe, [choice(lora_files["unet"], 0.5)]):
        raise RuntimeError("boom")
    assert adapter_names(pipe) == set() and fingerprint(pipe) == before


def test_bad_files_are_rejected_before_anything_loads(pipe: Any, lora_files: dict[str, Path],
                                                      tmp_path: Path) -> None:
    before = fingerprint(pipe)
    good = choice(lora_files["unet"], 0.5)
    cases = [
        (LoraChoice("loha", str(lora_files["loha"]), "", "style", 0.5), "LoHa"),
        (LoraChoice("gone", str(tmp_path / "gone.safetensors"), "", "style", 0.5), "file not found"),
        (LoraChoice("changed", good.file, "f" * 64, "style", 0.5), "changed since the plan"),
    ]
    for bad, words in cases:
        with pytest.raises(ModelError, match=words), applied_loras(pipe, [good, bad]):
            pytest.fail("body must not run")
        assert adapter_names(pipe) == set() and fingerprint(pipe) == before


def test_empty_stack_is_a_no_op(pipe: Any) -> None:
    before = fingerprint(pipe)
    with applied_loras(pipe, []):
        assert adapter_names(pipe) == set()
    assert fingerprint(pipe) == before
