"""A1111 prompt weighting read into (text, weight) fragments; odd input never raises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ai_wallpaper.scene.prompt_syntax import ROUND, SQUARE, parse_weighted, to_compel


@pytest.mark.parametrize(("text", "fragments"), [
    ("a red car", [("a red car", 1.0)]),
    ("a (red:1.3) car", [("a ", 1.0), ("red", 1.3), (" car", 1.0)]),
    ("(word)", [("word", ROUND)]),
    ("[word]", [("word", SQUARE)]),
    ("((word))", [("word", ROUND * ROUND)]),
    ("[[word]]", [("word", SQUARE * SQUARE)]),
    ("(a (b:1.5) c:0.8)", [("a ", 0.8), ("b", 1.5 * 0.8), (" c", 0.8)]),
    ("(word:1.0) rest", [("word rest", 1.0)]),
    (r"\(literal\) (x)", [("(literal) ", 1.0), ("x", ROUND)]),
    (r"a \[b\] \\ c", [("a [b] \\ c", 1.0)]),
    ("( word : 1.2 )", [(" word ", 1.2)]),
    ("", [("", 1.0)]),
])
def test_a1111_weights(text: str, fragments: list[tuple[str, float]]) -> None:
    parsed = parse_weighted(text)
    assert [t for t, _ in parsed.fragments] == [t for t, _ in fragments]
    assert [w for _, w in parsed.fragments] == pytest.approx([w for _, w in fragments])
    assert parsed.warnings == ()


@pytest.mark.parametrize(("text", "plain", "warning"), [
    ("a (b", "a (b", "unclosed '('"),
    ("a [b", "a [b", "unclosed '['"),
    ("a b)", "a b)", "unopened ')'"),
    ("a b]", "a b]", "unopened ']'"),
    ("x:1.2)", "x:1.2)", "unopened ')'"),
    ("(x:1.2.3)", "(x:1.2.3)", "is not a number"),
    ("(x:-2)", "x", "clamped"),
    ("a BREAK b", "a BREAK b", "BREAK is not supported"),
    ("[cat:dog:0.5]", "cat:dog:0.5", "prompt editing"),
    ("<lora:foo:0.8> x", "<lora:foo:0.8> x", "<lora:...> tags"),
])
def test_odd_input_is_literal_text_with_a_warning(text: str, plain: str, warning: str) -> None:
    parsed = parse_weighted(text)
    assert parsed.plain == plain
    assert any(warning in w for w in parsed.warnings), parsed.warnings


def test_unclosed_bracket_inside_a_closed_one_keeps_the_outer_weight() -> None:
    parsed = parse_weighted("(a [b)")
    assert parsed.fragments == (("a [b", pytest.approx(ROUND)),)
    assert parsed.warnings == ("unclosed '[' read as literal text",)


@pytest.mark.parametrize(("text", "compel"), [
    ("a (red:1.3) car", "a (red)1.3 car"),
    ("((word)) x", "(word)1.21 x"),
    ("[word]", "(word)0.9091"),
    (r"\(lit\) (x) ", r"\(lit\) (x)1.1 "),
    ('say "hi"', r'say \"hi\"'),
    ("C++ code, 18+ only", "C ++ code, 18 + only"),  # compel would read a trailing '+' as a weight
    ("plain text", "plain text"),
])
def test_to_compel(text: str, compel: str) -> None:
    assert to_compel(text) == compel


@given(st.text(alphabet="ab ()[]:\\.,+-=1203\"<>|BREAK", max_size=60))
def test_any_text_parses_without_raising(text: str) -> None:
    parsed = parse_weighted(text)
    assert parsed.fragments and all(w >= 0.0 for _, w in parsed.fragments)
    assert isinstance(parsed.to_compel(), str)
    # every character of the input is either syntax or kept: the plain text never grows
    assert len(parsed.plain) <= len(text) or text == ""


@given(st.text(alphabet=st.characters(blacklist_characters="()[]\\:", blacklist_categories=("Cs",)), max_size=80))
def test_text_without_syntax_is_one_unweighted_fragment(text: str) -> None:
    parsed = parse_weighted(text)
    assert parsed.plain == text and not parsed.weighted


def test_prompt_syntax_is_torch_free() -> None:
    code = ("import sys; from ai_wallpaper.scene import prompt_syntax; prompt_syntax.to_compel('(a:1.2)'); "
            "heavy = {'torch', 'transformers', 'diffusers', 'compel'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
