"""Prompt rewriting: trigger words once, modifiers, negative, and CLIP token counts/warnings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ai_wallpaper.catalog.builtin import _write_tokenizer
from ai_wallpaper.catalog.tokenizers import tokenizer_dirs_for
from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene import prompts
from ai_wallpaper.scene.plan import LoraChoice

SAMPLES = [
    "a photo",
    "A  Photo,  of\tthe CAT's  hat!!  (masterpiece:1.2)",
    "Ünïcödé café 123 — 4k, 8K, naïve façade",
    "ＦＵＬＬ width, emoji 🌄 and punctuation ... !?",
    "",
]


def lora(name: str, *words: str, weight: float = 0.7) -> LoraChoice:
    return LoraChoice(name=name, file=f"/x/{name}.safetensors", sha256="0" * 64, type="style", weight=weight,
                      trigger_words=words)


@pytest.fixture(scope="module")
def byte_tok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tok") / "tokenizer"
    _write_tokenizer(d)
    return d


@pytest.fixture(scope="module")
def merged_tok(tmp_path_factory: pytest.TempPathFactory, byte_tok: Path) -> Path:
    """The byte vocab plus a few BPE merges, so merge handling is compared too."""
    d = tmp_path_factory.mktemp("tok") / "tokenizer_2"
    d.mkdir()
    vocab = json.loads((byte_tok / "vocab.json").read_text())
    merges = [("p", "h"), ("ph", "o"), ("t", "o</w>"), ("pho", "to</w>"), ("m", "o"), ("mo", "u"),
              ("a", "t"), ("at", "e"), ("c", "a")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return d


# --- rewriting ------------------------------------------------------------------------------------


def test_trigger_words_are_inserted_once() -> None:
    stack = [lora("a", "papercut", "layered"), lora("b", "Papercut", "pixel art")]
    result = prompts.rewrite_prompt("a forest at dawn, LAYERED paper", "blurry", stack)
    assert result.prompt == "papercut, pixel art, a forest at dawn, LAYERED paper"
    assert result.triggers_added == ("papercut", "pixel art")
    again = prompts.rewrite_prompt(result.prompt, "blurry", stack)
    assert again.prompt == result.prompt and again.triggers_added == ()


def test_whole_words_only() -> None:
    result = prompts.rewrite_prompt("artistic cityscape", "", [lora("a", "art", "city")])
    assert result.prompt == "art, city, artistic cityscape"
    assert prompts.contains_phrase("A  Golden   hour sky", "golden hour")
    assert not prompts.contains_phrase("goldenhour", "golden hour")


def test_modifiers_and_negative_prompt() -> None:
    result = prompts.rewrite_prompt(
        "  misty lake ,  ", "blurry, low quality", [lora("s", "mystyle")],
        prepend=["masterpiece", "best quality"], append=["8k wallpaper", "Misty lake", ""],
        negative_append=["Blurry", "watermark", "text"])
    assert result.prompt == "masterpiece, best quality, mystyle, misty lake, 8k wallpaper"
    assert result.negative_prompt == "blurry, low quality, watermark, text"
    assert prompts.rewrite_prompt("x", "", [], negative_append=["a"]).negative_prompt == "a"


# --- token counts -----------------------------------------------------------------------------------


def test_counts_equal_transformers_clip_tokenizer(byte_tok: Path, merged_tok: Path) -> None:
    from transformers import CLIPTokenizer

    for d in (byte_tok, merged_tok):
        reference = CLIPTokenizer.from_pretrained(str(d), model_max_length=77)
        for text in [*SAMPLES, "photo of a mouse at the cafe " * 3]:
            ours = prompts.clip_tokenizer(d).encode(text, add_special_tokens=False).ids
            theirs = reference(text, truncation=False).input_ids[1:-1]
            assert ours == theirs, (d.name, text)
    # the merges are really used: "photo" is one token with them, six bytes without
    assert prompts.count_tokens("photo", merged_tok)[0] == 1
    assert prompts.count_tokens("photo", byte_tok)[0] == 5


def test_a_long_prompt_is_counted_not_warned_about(byte_tok: Path) -> None:
    """Nothing is cut any more (the stages encode whole prompts); count_tokens still splits at the window."""
    from transformers import CLIPTokenizer

    text = ("a quiet harbour at dusk with boats and gulls, lanterns glowing softly on the water, "
            "old stone houses along the pier")
    result = prompts.rewrite_prompt(text, "blurry", [], tokenizer_dirs=[byte_tok])
    assert result.token_counts["prompt"] == len(text) - text.count(" ")  # bytes, spaces dropped
    assert result.warnings == ()
    n, rest = prompts.count_tokens(text, byte_tok)
    reference = CLIPTokenizer.from_pretrained(str(byte_tok), model_max_length=77)
    full = reference(text, truncation=False).input_ids[1:-1]
    assert n == len(full) and reference(rest, truncation=False).input_ids[1:-1] == full[75:]


def test_both_tokenizers_are_counted_and_the_largest_count_wins(byte_tok: Path, merged_tok: Path) -> None:
    text = "photo " * 60  # 120 byte tokens with the byte vocab, 60 with the merges
    result = prompts.rewrite_prompt(text, "ugly " * 30, [], tokenizer_dirs=[byte_tok, merged_tok])
    assert result.token_counts == {"prompt": 300, "negative_prompt": 120} and result.warnings == ()
    short = prompts.rewrite_prompt("photo", "photo", [], tokenizer_dirs=[byte_tok, merged_tok])
    assert short.warnings == () and short.token_counts == {"prompt": 5, "negative_prompt": 5}
    assert not short.approximate


def test_weighted_prompts_count_the_text_not_the_syntax(byte_tok: Path) -> None:
    weighted = prompts.rewrite_prompt("a (red:1.3) [car]", "((ugly))", [], tokenizer_dirs=[byte_tok])
    plain = prompts.rewrite_prompt("a red car", "ugly", [], tokenizer_dirs=[byte_tok])
    assert weighted.token_counts == plain.token_counts and weighted.warnings == ()
    broken = prompts.rewrite_prompt("a (red car", "ugly]", [], tokenizer_dirs=[byte_tok])
    assert broken.warnings == ("prompt: unclosed '(' read as literal text",
                               "negative_prompt: unopened ']' read as literal text")
    assert broken.token_counts["prompt"] == plain.token_counts["prompt"] + 1  # the '(' is text


def test_without_tokenizer_files_counts_are_approximate() -> None:
    result = prompts.rewrite_prompt("a red fox, snow", "", [])
    assert result.approximate and result.token_counts["prompt"] == 5
    assert "approximate" in result.warnings[0] and len(result.warnings) == 1
    long = prompts.rewrite_prompt("word " * 80, "", [])
    assert long.token_counts["prompt"] == 80 and len(long.warnings) == 1


# --- finding tokenizer files -----------------------------------------------------------------------


def fake_sdxl_dir(root: Path) -> Path:
    """A diffusers SDXL folder as resolve_source sees it (model_index.json, tokenizers, a UNet file)."""
    root.mkdir(parents=True)
    index = {c: ["diffusers", "X"] for c in ("unet", "vae", "text_encoder", "text_encoder_2", "scheduler")}
    (root / "model_index.json").write_text(json.dumps(index))
    for name in ("tokenizer", "tokenizer_2"):
        _write_tokenizer(root / name)
    (root / "unet").mkdir()
    (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    return root


def single_file_checkpoint(path: Path, *, builtin_layout: bool) -> Path:
    """A header-only SDXL single-file checkpoint (the tensor data is never read while planning)."""
    width = 32 if builtin_layout else 320
    shapes = {"model.diffusion_model.input_blocks.0.0.weight": [width, 4, 3, 3],
              "conditioner.embedders.0.transformer.text_model.x": [1],
              "conditioner.embedders.1.model.positional_embedding": [77, 64]}
    header = json.dumps({k: {"dtype": "F32", "shape": v, "data_offsets": [0, 0]} for k, v in shapes.items()})
    path.write_bytes(len(header).to_bytes(8, "little") + header.encode())
    return path


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache (read at call time by huggingface_hub's own lookup)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_tokenizer_dirs_for_builtin_creates_them_once(paths: Paths) -> None:
    (d,) = tokenizer_dirs_for("builtin:tiny", ModelSettings(), paths)
    assert d == paths.builtin_models_dir / "tokenizer"
    stamp = (d / "vocab.json").stat().st_mtime_ns
    assert tokenizer_dirs_for("builtin:tiny", ModelSettings(), paths) == [d]
    assert (d / "vocab.json").stat().st_mtime_ns == stamp
    assert prompts.count_tokens("ab", d) == (2, "")
    assert [p.name for p in d.parent.iterdir()] == ["tokenizer"]  # no temp folder left beside it


def test_tokenizer_dirs_for_local_dirs_files_and_hub_cache(tiny_sdxl_dir: Path, paths: Paths, tmp_path: Path,
                                                           hub: Path) -> None:
    models = ModelSettings()
    expected = [tiny_sdxl_dir / "tokenizer", tiny_sdxl_dir / "tokenizer_2"]
    assert tokenizer_dirs_for(str(tiny_sdxl_dir), models, paths) == expected
    # transformers 5 saved only tokenizer.json there: it must count like the byte vocab it came from
    byte_dir = tmp_path / "bytes"
    _write_tokenizer(byte_dir)
    for text in SAMPLES:
        assert prompts.count_tokens(text, expected[1]) == prompts.count_tokens(text, byte_dir)
    # a single file: the tokenizers of the config folder diffusers will be given
    single = single_file_checkpoint(tmp_path / "model.safetensors", builtin_layout=False)
    assert tokenizer_dirs_for(str(single), models, paths) == []  # no config anywhere
    with_config = ModelSettings(base=str(single), base_config=str(tiny_sdxl_dir))
    assert tokenizer_dirs_for(str(single), with_config, paths) == expected
    tiny_layout = single_file_checkpoint(tmp_path / "tiny.safetensors", builtin_layout=True)
    assert tokenizer_dirs_for(str(tiny_layout), models, paths) == [paths.builtin_models_dir / "tokenizer"]
    # a hub id: only the local cache is looked at
    snap = fake_sdxl_dir(hub / "models--org--sdxl" / "snapshots" / "abc123")
    (hub / "models--org--sdxl" / "refs").mkdir()
    (hub / "models--org--sdxl" / "refs" / "main").write_text("abc123")
    assert tokenizer_dirs_for("org/sdxl", models, paths) == [snap / "tokenizer", snap / "tokenizer_2"]
    assert tokenizer_dirs_for("org/other", models, paths) == []
    downloading = ModelSettings(allow_download=True)
    assert tokenizer_dirs_for("org/other", downloading, paths) == []  # nothing on disk yet


def test_tokens_are_counted_with_the_model_the_pipeline_loads(paths: Paths, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative name means <data>/models/<name> to the pipeline, never ./<name>: counting agrees."""
    from ai_wallpaper.catalog.model_sources import resolve_source

    models = ModelSettings()
    work = tmp_path / "work"
    fake_sdxl_dir(work / "mine")
    monkeypatch.chdir(work)
    assert tokenizer_dirs_for("mine", models, paths) == []
    under_models = fake_sdxl_dir(paths.models_dir / "mine")
    assert Path(resolve_source("mine", "base", models, paths).location) == under_models
    assert tokenizer_dirs_for("mine", models, paths) == [under_models / "tokenizer",
                                                                 under_models / "tokenizer_2"]


def test_prompt_path_is_torch_free_and_fast(paths: Paths) -> None:
    code = """
import sys, time
t0 = time.perf_counter()
from ai_wallpaper.scene import prompts
from ai_wallpaper.catalog.tokenizers import tokenizer_dirs_for
from ai_wallpaper.scene import lora_selector
from ai_wallpaper.scene import lora_library as loras
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene.plan import LoraChoice
from ai_wallpaper.config.render_settings import ModelSettings
dirs = tokenizer_dirs_for("builtin:tiny", ModelSettings(), Paths.from_env())
stack = [LoraChoice("a", "/x", "0", "style", 0.5, ("trigger",))]
r = prompts.rewrite_prompt("a lake " * 20, "blurry", stack, tokenizer_dirs=dirs)
assert r.token_counts["prompt"] > 75 and not r.warnings and not r.approximate
heavy = {"torch", "transformers", "diffusers"} & set(sys.modules)
assert not heavy, heavy
print(time.perf_counter() - t0)
"""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).parents[2])
    inside = float(out.stdout.strip().splitlines()[-1])
    assert inside < 0.5, inside
    assert time.perf_counter() - start < 3.0


def test_the_refiner_prompt_is_the_prompt_without_trigger_words() -> None:
    stack = [LoraChoice("a", "/x", "0", "style", 0.5, ("glowstyle", "neon glow"))]
    r = prompts.rewrite_prompt("a lake", "blurry", stack, prepend=["masterpiece"], append=["8k"])
    assert r.prompt == "masterpiece, glowstyle, neon glow, a lake, 8k"
    assert r.refiner_prompt == "masterpiece, a lake, 8k"
    assert prompts.rewrite_prompt("a lake", "", []).refiner_prompt == "a lake"
