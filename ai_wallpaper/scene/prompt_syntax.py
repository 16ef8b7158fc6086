"""Prompt weighting: AUTOMATIC1111's syntax read into weighted fragments, and written as compel's.

Most SDXL prompts are written in A1111 syntax: `(word:1.3)`, `(word)` = x1.1, `[word]` = x1/1.1,
nesting multiplies (`((word))` = x1.21), `\\(` and `\\)` are literal parentheses. compel has a syntax
of its own (`word++`, `(word)1.3`). This module reads A1111 syntax into `(text, weight)` fragments,
the exact input of compel's embedding builder; `to_compel` writes the same fragments in compel's
syntax for people and logs. The encoder (`render/stages/conditioning.py`) takes the fragments, not
that string, because compel's own parser reads some plain text as syntax ("C++" and "18+" become
weights, "(a - b)1.2" falls back to literal text with the "1.2" in it).

Pure and torch-free (the planner uses it). Nothing here raises on odd input: an unbalanced bracket or a
malformed weight is literal text, and the result says so in a warning the plan can show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND = 1.1  # (word)
SQUARE = 1 / 1.1  # [word]
MAX_WEIGHT = 10.0  # beyond this fp16 embeddings overflow; compel needs weights >= 0

# One token of A1111 attention syntax (its own regex, plus a malformed ':weight)' caught as one token).
_TOKEN = re.compile(r"""
\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:
""", re.VERBOSE)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_BREAK = re.compile(r"\bBREAK\b")
_EDITING = re.compile(r"\[[^\[\]]*[:|][^\[\]]*\]")
_EXTRA_NETWORK = re.compile(r"<(lora|lyco|hypernet):[^>]*>", re.IGNORECASE)
_COMPEL_OPERATOR_END = re.compile(r"(?<=\S)([+-]+)(?=\s|$|[().,\"=])")


@dataclass(frozen=True)
class WeightedPrompt:
    """`fragments`: (text, weight) runs in order, neighbours of equal weight merged; never empty."""

    fragments: tuple[tuple[str, float], ...]
    warnings: tuple[str, ...] = ()

    @property
    def plain(self) -> str:
        """The text without any weighting syntax (what the tokenizer reads)."""
        return "".join(text for text, _ in self.fragments)

    @property
    def weighted(self) -> bool:
        return any(weight != 1.0 for _, weight in self.fragments)

    def to_compel(self) -> str:
        """The same prompt in compel's syntax: `(text)1.21` for a weighted run, escaped literals."""
        parts = []
        for text, weight in self.fragments:
            literal = _compel_literal(text)
            if weight == 1.0:
                parts.append(literal)
            elif literal.strip():
                lead, core, trail = _split_space(literal)
                parts.append(f"{lead}({core}){_format_weight(weight)}{trail}")
        return "".join(parts)


@dataclass
class _Run:
    text: str
    weight: float = 1.0
    bracket: str = ""  # an opening '(' or '[' still waiting for its close; "used" once it closed


def parse_weighted(text: str) -> WeightedPrompt:
    """Read A1111 attention syntax. Unclosed or unopened brackets, bad weights: literal text, with a warning."""
    runs: list[_Run] = []
    opened: dict[str, list[int]] = {"(": [], "[": []}
    warnings: list[str] = []

    def close(kind: str, factor: float) -> None:
        start = opened[kind].pop()
        runs[start].bracket = "used"
        for run in runs[start:]:
            run.weight *= factor

    for match in _TOKEN.finditer(text):
        token, raw_weight = match.group(0), match.group(1)
        if token.startswith("\\") and len(token) == 2:
            runs.append(_Run(token[1]))
        elif token in opened:
            opened[token].append(len(runs))
            runs.append(_Run(token, bracket=token))
        elif raw_weight is not None and opened["("]:
            value = _weight_value(raw_weight, warnings)
            if value is None:
                runs.append(_Run(token))  # literal; its '(' stays open and ends up literal too
            else:
                close("(", value)
        elif token in (")", "]") and opened["(" if token == ")" else "["]:
            close("(" if token == ")" else "[", ROUND if token == ")" else SQUARE)
        else:
            if token in (")", "]") or raw_weight is not None:
                warnings.append(f"unopened {token[-1]!r} read as literal text")
            runs.append(_Run(token))
    for start in sorted((*opened["("], *opened["["])):
        runs[start].bracket = ""
        warnings.append(f"unclosed {runs[start].text!r} read as literal text")
    fragments = _merge([(run.text, run.weight) for run in runs if run.bracket != "used"])
    plain = "".join(t for t, _ in fragments)
    if _BREAK.search(plain):
        warnings.append("BREAK is not supported; it is read as the word BREAK (long prompts are encoded whole)")
    if _EDITING.search(text):
        warnings.append("prompt editing [a:b:when] and alternation [a|b] are not supported; read as weighted text")
    if _EXTRA_NETWORK.search(plain):
        warnings.append("<lora:...> tags are read as text; LoRAs come from loras.yaml")
    return WeightedPrompt(fragments, tuple(dict.fromkeys(warnings)))


def to_compel(text: str) -> str:
    """A1111 syntax -> compel syntax (see `WeightedPrompt.to_compel`)."""
    return parse_weighted(text).to_compel()


def _weight_value(raw: str, warnings: list[str]) -> float | None:
    if not _NUMBER.fullmatch(raw):
        warnings.append(f"weight {raw!r} is not a number; read as literal text")
        return None
    value = float(raw)
    if value < 0.0 or value > MAX_WEIGHT:
        warnings.append(f"weight {raw} clamped to [0, {MAX_WEIGHT:g}]")
        value = min(max(value, 0.0), MAX_WEIGHT)
    return value


def _merge(pairs: list[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    merged: list[tuple[str, float]] = []
    for text, weight in pairs:
        if not text:
            continue
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + text, weight)
        else:
            merged.append((text, weight))
    return tuple(merged) or (("", 1.0),)


def _compel_literal(text: str) -> str:
    """Escape compel's parentheses and quotes; keep a trailing '+'/'-' from reading as an up/down weight
    (a space before it: CLIP splits punctuation from words anyway, so the tokens are the same)."""
    escaped = text.replace("(", "\\(").replace(")", "\\)").replace('"', '\\"')
    return _COMPEL_OPERATOR_END.sub(r" \1", escaped)


def _split_space(text: str) -> tuple[str, str, str]:
    core = text.strip()
    start = text.index(core)
    return text[:start], core, text[start + len(core):]


def _format_weight(weight: float) -> str:
    return f"{weight:.4f}".rstrip("0").rstrip(".")
