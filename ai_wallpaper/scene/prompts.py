"""Prompt rewriting: LoRA trigger words, theme modifiers, negative prompt, CLIP's 77-token window.

Torch-free and fast (the `plan` command uses it): tokens are counted with the `tokenizers`
library, built exactly like transformers' CLIPTokenizer (same BPE, normaliser and pre-tokeniser),
from the model's own vocab.json + merges.txt. Which folders those are is the catalog's answer
(`catalog/tokenizers.py`), the same model the pipeline will load.

Long prompts are not cut: the render stages encode every prompt whole, in as many 77-token CLIP
windows (BOS + 75 + EOS) as it needs (`render/stages/conditioning.py`). Only SDXL's pooled embedding
reads just the first window, so trigger words go near the front. Prompts may carry A1111 weights
(`(word:1.3)`, `[word]`); counts are of the text the tokenizer reads, the syntax removed
(`scene/prompt_syntax.py`), and a syntax problem (an unbalanced bracket) is a warning in the plan.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

# The planner finds the base model's tokenizer folders through this name; catalog owns the lookup.
from ai_wallpaper.catalog.tokenizers import has_bpe_files
from ai_wallpaper.core import log
from ai_wallpaper.scene.plan import LoraChoice
from ai_wallpaper.scene.prompt_syntax import parse_weighted

logger = log.get(__name__)

CLIP_WINDOW = 77
CONTENT_TOKENS = CLIP_WINDOW - 2  # BOS and EOS take two
# CLIP's pre-tokeniser (transformers' CLIPTokenizer): words, single digits, runs of punctuation.
_CLIP_SPLIT = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"""
               r"""|[^\s\p{L}\p{N}]+""")
_APPROX_SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE)


@dataclass(frozen=True)
class PromptResult:
    prompt: str
    negative_prompt: str
    token_counts: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    triggers_added: tuple[str, ...] = ()
    approximate: bool = False  # no tokenizer files were found: counts are a lower bound
    refiner_prompt: str = ""  # the prompt without the LoRA trigger words (the refiner runs without LoRAs)


def rewrite_prompt(prompt: str, negative_prompt: str, stack: Sequence[LoraChoice], *,
                   prepend: Sequence[str] = (), append: Sequence[str] = (),
                   negative_append: Sequence[str] = (), tokenizer_dirs: Sequence[Path] = ()) -> PromptResult:
    """Insert each trigger word once, apply theme modifiers, compose the negative, check lengths.

    Order: prepend modifiers, then trigger words (not already in the prompt), then the prompt, then
    append modifiers. A modifier or trigger already present (case-insensitive, whole words) is not
    repeated.
    """
    final, triggers, refiner = compose_prompt(prompt, stack, prepend=prepend, append=append)
    negative = _clean(negative_prompt)
    extra: list[str] = []
    for text in negative_append:
        _add_once(extra, text, [negative, *extra])
    final_negative = ", ".join(p for p in [negative, *extra] if p)

    counts, warnings, approximate = check_lengths({"prompt": final, "negative_prompt": final_negative},
                                                  tokenizer_dirs)
    for w in warnings:
        logger.warning(w)
    return PromptResult(final, final_negative, counts, tuple(warnings), triggers, approximate, refiner)


def compose_prompt(prompt: str, stack: Sequence[LoraChoice] = (), *, prepend: Sequence[str] = (),
                   append: Sequence[str] = ()) -> tuple[str, tuple[str, ...], str]:
    """(prompt, trigger words added, refiner prompt): prepend modifiers, triggers, prompt, append modifiers."""
    body = _clean(prompt)
    front: list[str] = []
    triggers: list[str] = []
    back: list[str] = []
    for text in prepend:
        _add_once(front, text, [*front, body])
    for choice in stack:
        for word in choice.trigger_words:
            _add_once(triggers, word, [*front, *triggers, body])
    for text in append:
        _add_once(back, text, [*front, *triggers, body, *back])
    final = ", ".join(p for p in [*front, *triggers, body, *back] if p)
    refiner = ", ".join(p for p in [*front, body, *back] if p)
    return final, tuple(triggers), refiner


def _clean(text: str) -> str:
    """Collapse whitespace and stray separators: 'a ,  b,' -> 'a, b'."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    return re.sub(r"\s+,", ",", text).strip(" ,")


def contains_phrase(haystack: str, phrase: str) -> bool:
    """Case-insensitive whole-word(s) match; 'art' is not found in 'artistic'."""
    words = _clean(phrase)
    if not words:
        return True
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words.split(" ")) + r"(?!\w)"
    return re.search(pattern, haystack, re.IGNORECASE) is not None


def _add_once(target: list[str], text: str, existing: Sequence[str]) -> bool:
    text = _clean(text)
    if not text or contains_phrase(" , ".join(existing), text):
        return False
    target.append(text)
    return True


# --- token counting ------------------------------------------------------------------------------


def check_lengths(texts: dict[str, str],
                  tokenizer_dirs: Sequence[Path]) -> tuple[dict[str, int], list[str], bool]:
    """Token counts (max over tokenizers, BOS/EOS excluded, weighting syntax removed) and warnings:
    weighting-syntax problems, and that counts are approximate when there is no tokenizer."""
    counts: dict[str, int] = {}
    warnings: list[str] = []
    dirs = list(dict.fromkeys(Path(d) for d in tokenizer_dirs))
    if not dirs:
        warnings.append("no tokenizer files found for the base model: token counts are approximate "
                        "(a lower bound)")
    for label, text in texts.items():
        parsed = parse_weighted(text)
        warnings.extend(f"{label}: {problem}" for problem in parsed.warnings)
        fragments = [fragment for fragment, _ in parsed.fragments]
        if dirs:
            counts[label] = max(sum(count_tokens(f, d)[0] for f in fragments) for d in dirs)
        else:
            counts[label] = sum(len(_APPROX_SPLIT.findall(f.lower())) for f in fragments)
        if counts[label] > CONTENT_TOKENS:
            logger.info("prompt.long", label=label, tokens=counts[label],
                        windows=-(-counts[label] // CONTENT_TOKENS), approximate=not dirs)
    return counts, warnings, not dirs


def prompt_tokens(text: str, tokenizer_dirs: Sequence[Path]) -> tuple[int, bool]:
    """(tokens of one prompt as `check_lengths` counts them, approximate?) -- without its warnings."""
    counts, _, approximate = check_lengths({"prompt": text}, tokenizer_dirs)
    return counts["prompt"], approximate


def count_tokens(text: str, tokenizer_dir: Path) -> tuple[int, str]:
    """(content tokens, the text past the first 77-token window or ''). Syntax is not removed here."""
    enc = clip_tokenizer(tokenizer_dir).encode(text, add_special_tokens=False)
    n = len(enc.ids)
    if n <= CONTENT_TOKENS:
        return n, ""
    start = enc.offsets[CONTENT_TOKENS][0]
    return n, text[start:].strip()


def clip_tokenizer(tokenizer_dir: Path) -> Any:
    """A `tokenizers.Tokenizer` equal to transformers' CLIPTokenizer for this folder (cached).

    Hub SDXL repos ship vocab.json + merges.txt; transformers 5 `save_pretrained` writes only
    tokenizer.json (the serialised fast tokenizer). vocab/merges win when both exist.
    """
    d = Path(tokenizer_dir)
    names = ("vocab.json", "merges.txt") if has_bpe_files(d) else ("tokenizer.json",)
    stamp = tuple((d / f).stat().st_mtime_ns for f in names)
    return _build_clip_tokenizer(str(d.resolve()), stamp)


@lru_cache(maxsize=8)
def _build_clip_tokenizer(directory: str, _stamp: tuple[int, ...]) -> Any:
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    d = Path(directory)
    if not has_bpe_files(d):
        return Tokenizer.from_file(str(d / "tokenizer.json"))
    vocab = json.loads((d / "vocab.json").read_text(encoding="utf-8"))
    lines = (d / "merges.txt").read_text(encoding="utf-8").splitlines()
    pairs = (ln.split() for ln in lines if not ln.startswith("#version"))
    merges = [(p[0], p[1]) for p in pairs if len(p) == 2]
    unk = "<|endoftext|>"
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                        end_of_word_suffix="</w>", fuse_unk=False, unk_token=unk))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    return tok
