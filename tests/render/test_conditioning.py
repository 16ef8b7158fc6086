"""Whole, weighted prompt conditioning (compel 2.5.1) on the tiny SDXL base and refiner (CPU)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ai_wallpaper.render.stages.conditioning import PromptEmbeds, encode_prompts
from ai_wallpaper.scene.prompt_syntax import parse_weighted, to_compel

CPU = torch.device("cpu")
LONG = ", ".join(f"tree{i} by a lake" for i in range(20))  # ~300 byte-level tokens


def shapes(e: PromptEmbeds) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in e.as_kwargs().items()}


def test_a_long_prompt_is_encoded_whole_by_both_encoders(tiny_pipe: Any) -> None:
    n = len(tiny_pipe.tokenizer(LONG).input_ids) - 2
    assert n > 3 * 75
    enc = encode_prompts(tiny_pipe, LONG, "blurry")
    windows = enc.prompt_embeds.shape[1] // 77
    assert enc.prompt_embeds.shape[1] % 77 == 0 and windows * 75 >= n
    width = tiny_pipe.text_encoder.config.hidden_size + tiny_pipe.text_encoder_2.config.hidden_size
    tokens = windows * 77
    assert shapes(enc) == {"prompt_embeds": (1, tokens, width), "negative_prompt_embeds": (1, tokens, width),
                           "pooled_prompt_embeds": (1, 64), "negative_pooled_prompt_embeds": (1, 64)}
    for t in enc.as_kwargs().values():
        assert torch.is_inference(t) and not t.requires_grad


def test_equals_compels_own_sdxl_wrapper(tiny_pipe: Any) -> None:
    from compel import CompelForSDXL

    with torch.inference_mode():
        theirs = CompelForSDXL(tiny_pipe)(LONG, negative_prompt="blurry")
    ours = encode_prompts(tiny_pipe, LONG, "blurry")
    assert torch.equal(ours.prompt_embeds, theirs.embeds)
    assert torch.equal(ours.negative_prompt_embeds, theirs.negative_embeds)
    assert torch.equal(ours.pooled_prompt_embeds, theirs.pooled_embeds)
    # weighted: compel parses the translated string into the same fragments, so the same embeddings up
    # to the weights' 4 printed decimals (its pooled embedding differs: compel pools the raw string,
    # syntax included; we pool the plain text)
    weighted = "a (lighthouse:1.3) at [dusk], ((gulls)) and \\(boats\\)"
    with torch.inference_mode():
        theirs = CompelForSDXL(tiny_pipe)(to_compel(weighted), negative_prompt="blurry")
    ours = encode_prompts(tiny_pipe, weighted, "blurry")
    torch.testing.assert_close(ours.prompt_embeds, theirs.embeds, rtol=0, atol=1e-4)
    assert not torch.equal(ours.pooled_prompt_embeds, theirs.pooled_embeds)
    pooled_of_plain = encode_prompts(tiny_pipe, "a lighthouse at dusk", "").pooled_prompt_embeds
    assert parse_weighted("a (lighthouse:1.3) at [dusk]").plain == "a lighthouse at dusk"
    assert torch.equal(encode_prompts(tiny_pipe, "a (lighthouse:1.3) at [dusk]", "").pooled_prompt_embeds,
                       pooled_of_plain)


def test_a_short_prompt_equals_diffusers_own_encoding(tiny_pipe: Any) -> None:
    ours = encode_prompts(tiny_pipe, "a lighthouse at dusk", "blurry")
    with torch.inference_mode():
        theirs = tiny_pipe.encode_prompt("a lighthouse at dusk", device=CPU, num_images_per_prompt=1,
                                         do_classifier_free_guidance=True, negative_prompt="blurry")
    for a, b in zip((ours.prompt_embeds, ours.negative_prompt_embeds, ours.pooled_prompt_embeds,
                     ours.negative_pooled_prompt_embeds), theirs, strict=True):
        assert torch.equal(a, b)


def test_a_weight_changes_the_embeddings_and_weight_one_does_not(tiny_pipe: Any) -> None:
    plain = encode_prompts(tiny_pipe, "a lighthouse at dusk", "blurry").prompt_embeds
    one = encode_prompts(tiny_pipe, "a (lighthouse:1.0) at dusk", "blurry").prompt_embeds
    up = encode_prompts(tiny_pipe, "a (lighthouse:1.3) at dusk", "blurry").prompt_embeds
    down = encode_prompts(tiny_pipe, "a [lighthouse] at dusk", "blurry").prompt_embeds
    assert torch.equal(one, plain)
    assert not torch.equal(up, plain) and not torch.equal(down, plain) and not torch.equal(up, down)
    # only the weighted tokens move (compel scales them away from the empty prompt's embedding)
    moved = (up - plain).abs().amax(dim=-1)[0]
    assert moved[0] == 0 and moved[1] == 0 and moved.count_nonzero() == len("lighthouse")  # BOS, "a" untouched


def test_positive_and_negative_are_padded_to_one_length(tiny_pipe: Any) -> None:
    enc = encode_prompts(tiny_pipe, "short", LONG)
    assert enc.prompt_embeds.shape == enc.negative_prompt_embeds.shape
    assert enc.prompt_embeds.shape[1] > 77


def test_no_negative_is_zeros_an_empty_one_is_encoded(tiny_pipe: Any) -> None:
    assert tiny_pipe.config.force_zeros_for_empty_prompt
    none = encode_prompts(tiny_pipe, "a lake", None)
    assert not none.negative_prompt_embeds.any() and not none.negative_pooled_prompt_embeds.any()
    empty = encode_prompts(tiny_pipe, "a lake", "")
    assert empty.negative_prompt_embeds.any()


def test_the_refiner_uses_its_one_encoder(tiny_refiner_pipe: Any) -> None:
    assert tiny_refiner_pipe.text_encoder is None and tiny_refiner_pipe.tokenizer is None
    enc = encode_prompts(tiny_refiner_pipe, LONG, "blurry")
    width = tiny_refiner_pipe.text_encoder_2.config.hidden_size
    assert enc.prompt_embeds.shape[1] > 77 and enc.prompt_embeds.shape[2] == width
    assert enc.prompt_embeds.shape == enc.negative_prompt_embeds.shape
    with torch.inference_mode():
        theirs = tiny_refiner_pipe.encode_prompt("a lake", device=CPU, num_images_per_prompt=1,
                                                 do_classifier_free_guidance=True, negative_prompt="blurry")
    ours = encode_prompts(tiny_refiner_pipe, "a lake", "blurry")
    assert torch.equal(ours.prompt_embeds, theirs[0]) and torch.equal(ours.pooled_prompt_embeds, theirs[2])


def test_odd_syntax_never_raises(tiny_pipe: Any) -> None:
    for text in ["a (b", "a b)]", "(x:1.2.3)", "C++ and 18+ (", '"quoted" \\ (x:0)', "", "((((", "x.and()"]:
        enc = encode_prompts(tiny_pipe, text, text)
        assert enc.prompt_embeds.shape[1] == 77


@pytest.mark.parametrize("text", ["a (lighthouse:1.3) at dusk", "plain words only"])
def test_the_same_prompt_gives_the_same_bits(tiny_pipe: Any, text: str) -> None:
    a, b = encode_prompts(tiny_pipe, text, "blurry"), encode_prompts(tiny_pipe, text, "blurry")
    assert all(torch.equal(x, y) for x, y in zip(a.as_kwargs().values(), b.as_kwargs().values(), strict=True))
