"""Prompt conditioning for every SDXL stage: whole prompts (never cut at 77 tokens), A1111 weights.

diffusers' own `encode_prompt` cuts each prompt at CLIP's 77-token window. Here a prompt is read with
`scene/prompt_syntax.py` (A1111 weights -> `(text, weight)` fragments) and encoded with compel 2.5.1
exactly as its `CompelForSDXL` sets up SDXL: one `Compel` per text encoder, penultimate hidden states
(not normalised), `truncate_long_prompts=False` (the prompt is encoded in as many 77-token windows as
it needs, each with its own BOS/EOS), and the two encoders' embeddings concatenated on the feature axis.
Positive and negative are padded to the same length with the empty prompt's embedding, as compel does.

Differences from calling `CompelForSDXL(pipe)(prompt)` (compel's own wrapper):
- the fragments go straight to compel's embedding builder, so no plain text is ever read as compel
  syntax ("C++", "18+", "word-" would be weights there);
- the pooled embedding comes from the plain text without syntax (compel pools the raw string,
  brackets and numbers included); like diffusers' it reads the first 77-token window;
- it works for the refiner too, which has only text_encoder_2/tokenizer_2 (`CompelForSDXL` needs both);
- an absent negative (None) is zeros where the model asks for it (`force_zeros_for_empty_prompt`),
  as in diffusers.

All encoding runs under `torch.inference_mode()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ai_wallpaper.core import log
from ai_wallpaper.scene.prompt_syntax import WeightedPrompt, parse_weighted

if TYPE_CHECKING:
    import torch

logger = log.get(__name__)


@dataclass(frozen=True)
class PromptEmbeds:
    """SDXL conditioning: (1, tokens, features) embeddings, (1, pooled features) pooled; equal token counts."""

    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor
    pooled_prompt_embeds: torch.Tensor
    negative_pooled_prompt_embeds: torch.Tensor

    def as_kwargs(self) -> dict[str, torch.Tensor]:
        """The four keyword arguments StableDiffusionXL(Img2Img)Pipeline takes instead of prompts."""
        return {"prompt_embeds": self.prompt_embeds, "negative_prompt_embeds": self.negative_prompt_embeds,
                "pooled_prompt_embeds": self.pooled_prompt_embeds,
                "negative_pooled_prompt_embeds": self.negative_pooled_prompt_embeds}


def encode_prompts(pipe: Any, prompt: str, negative_prompt: str | None) -> PromptEmbeds:
    """Encode `prompt` and `negative_prompt` (A1111 syntax) whole with every text encoder `pipe` has.

    Works for the SDXL base (text_encoder + text_encoder_2) and the refiner (text_encoder_2 only).
    """
    import torch

    compels = _compels(pipe)
    positive = parse_weighted(prompt)
    for warning in positive.warnings:
        logger.warning("conditioning.prompt_syntax", problem=warning)
    negative = parse_weighted(negative_prompt) if negative_prompt is not None else None
    zero_negative = negative is None and bool(getattr(pipe.config, "force_zeros_for_empty_prompt", False))
    with torch.inference_mode():
        pos_parts, neg_parts = [], []
        for compel in compels:
            pos = _embed(compel, positive)
            neg = _embed(compel, negative or parse_weighted(""))
            pos, neg = compel.pad_conditioning_tensors_to_same_length([pos, neg])
            pos_parts.append(pos)
            neg_parts.append(neg)
        pos_parts, neg_parts = _same_length(compels, pos_parts), _same_length(compels, neg_parts)
        embeds, negative_embeds = torch.cat(pos_parts, dim=-1), torch.cat(neg_parts, dim=-1)
        pooled = _pooled(compels[-1], positive)
        negative_pooled = _pooled(compels[-1], negative or parse_weighted(""))
        if zero_negative:
            negative_embeds, negative_pooled = torch.zeros_like(negative_embeds), torch.zeros_like(negative_pooled)
    tokens = int(embeds.shape[1])
    logger.info("conditioning.encoded", tokens=tokens, windows=tokens // _window(compels[0]), encoders=len(compels),
                weighted=positive.weighted or bool(negative and negative.weighted))
    return PromptEmbeds(embeds, negative_embeds, pooled, negative_pooled)


def _compels(pipe: Any) -> list[Any]:
    """One compel per text encoder, set up as compel's CompelForSDXL sets them up (the last one pools)."""
    from compel import Compel, ReturnedEmbeddingsType
    from diffusers.utils.torch_utils import get_module_execution_device

    pairs = [(getattr(pipe, tok, None), getattr(pipe, enc, None))
             for tok, enc in (("tokenizer", "text_encoder"), ("tokenizer_2", "text_encoder_2"))]
    present = [(tok, enc) for tok, enc in pairs if tok is not None and enc is not None]
    if not present:
        raise ValueError("the pipeline has no text encoder with a tokenizer")
    return [Compel(tokenizer=tok, text_encoder=enc, truncate_long_prompts=False,
                   returned_embeddings_type=ReturnedEmbeddingsType.PENULTIMATE_HIDDEN_STATES_NON_NORMALIZED,
                   requires_pooled=i == len(present) - 1, device=str(get_module_execution_device(enc)))
            for i, (tok, enc) in enumerate(present)]


def _embed(compel: Any, prompt: WeightedPrompt) -> torch.Tensor:
    """compel's embedding of weighted fragments (what `Compel.__call__` builds after parsing)."""
    texts = [text for text, _ in prompt.fragments]
    weights = [weight for _, weight in prompt.fragments]
    embeds: torch.Tensor = compel.conditioning_provider.get_embeddings_for_weighted_prompt_fragments(
        text_batch=[texts], fragment_weights_batch=[weights], should_return_tokens=False, device=compel.device)
    # compel hands back the tensor where the encoder's weights rest (the CPU under offload); the padding
    # it is joined with lives on the execution device.
    return embeds.to(compel.device)


def _pooled(compel: Any, prompt: WeightedPrompt) -> torch.Tensor:
    pooled: torch.Tensor = compel.conditioning_provider.get_pooled_embeddings([prompt.plain], device=compel.device)
    return pooled.to(device=compel.device, dtype=compel.conditioning_provider.text_encoder.dtype)


def _same_length(compels: list[Any], parts: list[torch.Tensor]) -> list[torch.Tensor]:
    """The encoders' token counts can differ only by whole windows (different tokenizers): pad with
    each encoder's own empty-prompt embedding, as CompelForSDXL does."""
    longest = max(int(p.shape[1]) for p in parts)
    out = []
    for compel, part in zip(compels, parts, strict=True):
        if part.shape[1] < longest:
            part = compel.pad_conditioning_tensors_to_same_length(
                [part, part.new_zeros((part.shape[0], longest, part.shape[2]))])[0]
        out.append(part)
    return out


def _window(compel: Any) -> int:
    return int(compel.conditioning_provider.max_token_count)
