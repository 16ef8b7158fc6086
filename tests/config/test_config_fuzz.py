"""Property-based fuzzing of config loading: any bytes as settings.yaml, themes.yaml or loras.yaml
give a valid config or a clean ConfigError naming file:line - never another exception - within
one second of CPU.

Three sources of input: (1) random YAML documents (nested mappings, lists and scalars with NaN,
infinities, huge integers and any unicode), dumped with PyYAML, plus structural mutations of the
shipped files' data; (2) byte-level mutations of the shipped files (flips, insertions of bytes and
YAML tokens, deletions, duplicated lines, tabs); (3) random bytes and random streams of YAML
tokens. Each is loaded through the real loaders (settings, themes, LoRA library) from real files.
Runs are reproducible (`derandomize=True`, no example database) and bounded in count, not time.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ai_wallpaper.config.settings import load_settings, settings_from_dict
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.scene.lora_library import load_library
from ai_wallpaper.scene.themes import load_themes

REPO = Path(__file__).resolve().parents[2]
CPU_LIMIT_S = 1.0
LOG = logging.getLogger(__name__)
STATS: dict[str, Any] = {"loads": 0, "examples": 0, "slowest": 0.0, "slowest_case": ""}
FILES = ("settings.yaml", "themes.yaml", "loras.yaml")
SHIPPED = {name: (REPO / "config" / name).read_bytes() for name in FILES}


def fuzz(examples: int) -> Any:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz")
    LOG.info("config fuzz: %d examples, %d loads, slowest %.3f s CPU (%s)", STATS["examples"], STATS["loads"],
             STATS["slowest"], STATS["slowest_case"])


def _loras(f: Path) -> object:
    lib_settings = settings_from_dict({"loras": {"file": str(f), "directory": str(f.parent / "lib")}})
    return load_library(Paths.under(f.parent / "xdg"), lib_settings, f.parent / "settings.yaml")


LOADERS: dict[str, Callable[[Path], object]] = {
    "settings.yaml": load_settings, "themes.yaml": load_themes, "loras.yaml": _loras}


def check_total(workdir: Path, name: str, data: bytes) -> None:
    """Load `data` as the config file `name`: a result or a ConfigError with file:line, in bound."""
    f = workdir / name
    f.write_bytes(data)
    start = time.process_time()
    try:
        LOADERS[name](f)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError must list its problems"
        for problem in exc.problems:
            assert re.search(rf"{re.escape(name)}:\d+: ", problem), f"no file:line in {problem!r}"
    cpu = time.process_time() - start
    STATS["loads"] += 1
    if cpu > STATS["slowest"]:
        STATS["slowest"], STATS["slowest_case"] = cpu, f"{name}, {len(data)} bytes"
    assert cpu < CPU_LIMIT_S, f"{name} took {cpu:.2f} s of CPU for {data[:200]!r}..."


# --- (1) random documents ------------------------------------------------------------------------

SCHEMA_WORDS = [
    "seed", "prompt", "models", "base", "memory", "pipeline", "txt2img", "width", "height", "steps",
    "upscale", "enhance", "tile", "overlap", "strength", "batch_size", "output", "weather", "location",
    "latitude", "longitude", "place", "connect_timeout", "open_meteo_url", "schedule", "cron", "desktop",
    "setter", "command", "themes", "loras", "file", "directory", "enabled", "version", "categories", "name",
    "weight", "category", "templates", "elements", "styles", "conditions", "seasons", "lora_hints",
    "required", "stacking_rules", "max_loras", "type_limits", "weight_range", "chance", "moods", "<<",
]
KEYS = st.sampled_from(SCHEMA_WORDS) | st.text(max_size=8)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10**120), max_value=10**120)
    | st.floats() | st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 2**63])
    | st.text(max_size=24) | st.sampled_from(["x.safetensors", "auto", "sdxl", "{element} in {color}",
                                               "https://example.com/v1", "0 7 * * *", "command", "a"])
)
DOCS = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=6),
                    max_leaves=40)
EXTREMES = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 10**30, -(10**30), -1, 0,
                            0.5, "", "x", None, True, [], {}, [float("nan"), 1.0]])


@st.composite
def shared(draw: st.DrawFn) -> Any:
    """Values used several times: PyYAML dumps them as an anchor and aliases, nested `levels` deep
    (9 levels of 9 uses is a billion laughs)."""
    value = draw(st.lists(SCALARS, min_size=1, max_size=4))
    for _ in range(draw(st.integers(1, 9))):
        value = [value] * draw(st.integers(1, 9))
    return {draw(KEYS): value, draw(KEYS): draw(DOCS)}


def dump(doc: Any, flow: bool, unicode: bool) -> bytes:
    return yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=unicode, sort_keys=False).encode("utf-8")


@fuzz(120)
@given(doc=st.dictionaries(KEYS, DOCS, max_size=8) | DOCS | shared(), flow=st.booleans(), unicode=st.booleans())
def test_random_documents(workdir: Path, doc: Any, flow: bool, unicode: bool) -> None:
    STATS["examples"] += 1
    data = dump(doc, flow, unicode)
    for name in FILES:
        check_total(workdir, name, data)


@st.composite
def mutated_tree(draw: st.DrawFn, name: str) -> Any:
    """The shipped file's data with 1-3 subtrees replaced, added or removed, or leaves made extreme."""
    data = copy.deepcopy(yaml.safe_load(SHIPPED[name]))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "add", "delete", "leaf", "leaf"]))
        node, key = data, None
        while True:  # down to a leaf ("leaf") or to a random depth
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            if not keys:
                key = None
                break
            key = draw(st.sampled_from(keys))
            child = node[key]
            if not isinstance(child, dict | list) or not child or (action != "leaf" and draw(st.integers(0, 3)) == 0):
                break
            node = child
        if key is None or action == "add":
            if isinstance(node, dict):
                node[draw(KEYS)] = draw(DOCS)
            else:
                node.append(draw(DOCS))
        elif action == "leaf":
            node[key] = draw(EXTREMES | SCALARS)
        elif action == "replace":
            node[key] = draw(DOCS)
        else:
            del node[key]
    return data


@pytest.mark.parametrize("name", FILES)
def test_structural_mutations_of_the_shipped_files(workdir: Path, name: str) -> None:
    @fuzz(60)
    @given(doc=mutated_tree(name), flow=st.booleans())
    def run(doc: Any, flow: bool) -> None:
        STATS["examples"] += 1
        check_total(workdir, name, dump(doc, flow, True))

    run()


# --- (2) byte-level mutations of the shipped files ---------------------------------------------------

TOKENS = [b"a", b"b: ", b": ", b"- ", b"\n", b"  ", b"\t", b"[", b"]", b"{", b"}", b",", b"&x ", b"*x", b"&y ",
          b"*y", b"<<: ", b"!!str ", b"!!python/object ", b"!!binary ", b"!!timestamp ", b"'", b'"', b"\\", b"#",
          b"---\n", b"...\n", b"? ", b"|\n", b">-\n", b"%YAML 1.1\n", b".nan", b".inf", b"-.inf", b"1e999", b"0x",
          b"0o7", b"1_000", b"12:30:45", b"2026-02-30", b"~", b"null", b"yes", b"\xff", b"\xc3", b"\x00", b"\x85",
          b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\r", b"@", b"`", b"%", b"!", b"9" * 4400, b"0x" + b"f" * 300,
          b"\"\\0\"", b"\"\\ud800\"", b"\"\\x85\"", b"-1", b"1.5", b"[1, 2]", b"{a: 1}", b"\nk: 2026-02-30\n",
          b"\n- &x [*x]\n", b"\nk: &y {a: *y}\n"]
MUTATIONS = st.lists(st.tuples(st.sampled_from(["flip", "insert", "delete", "dup_line", "tab", "value", "value"]),
                               st.integers(0, 2**32), st.lists(st.sampled_from(TOKENS), min_size=1, max_size=3)
                               .map(b"".join) | st.binary(min_size=1, max_size=6)),
                     min_size=1, max_size=5)


def mutate(data: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for op, where, payload in ops:
        i = where % (len(buf) + 1)
        if op == "flip" and buf:
            buf[i % len(buf)] ^= payload[0] or 0x20
        elif op == "insert":
            buf[i:i] = payload
        elif op == "delete":
            del buf[i:i + 1 + payload[0] % 64]
        elif op == "dup_line":
            start = buf.rfind(b"\n", 0, i) + 1
            end = buf.find(b"\n", i)
            line = bytes(buf[start:end + 1 if end >= 0 else len(buf)])
            buf[start:start] = line * (1 + payload[0] % 3)
        elif op == "tab":
            start = buf.rfind(b"\n", 0, i) + 1
            buf[start:start] = b"\t"
        elif op == "value":  # the value of the key on that line becomes the payload
            start = buf.rfind(b"\n", 0, i) + 1
            end = buf.find(b"\n", i)
            colon = buf.find(b": ", start, end if end >= 0 else len(buf))
            if colon >= 0:
                buf[colon + 2:end if end >= 0 else len(buf)] = payload
    return bytes(buf)


@pytest.mark.parametrize("name", FILES)
def test_byte_mutations_of_the_shipped_files(workdir: Path, name: str) -> None:
    @fuzz(150)
    @given(ops=MUTATIONS)
    def run(ops: list[tuple[str, int, bytes]]) -> None:
        STATS["examples"] += 1
        check_total(workdir, name, mutate(SHIPPED[name], ops))

    run()


# --- (3) random bytes and token soup -----------------------------------------------------------------


@fuzz(150)
@given(data=st.binary(max_size=600) | st.lists(st.sampled_from(TOKENS), max_size=80).map(b"".join))
def test_random_bytes(workdir: Path, data: bytes) -> None:
    STATS["examples"] += 1
    for name in FILES:
        check_total(workdir, name, data)


def test_the_shipped_files_still_load(workdir: Path) -> None:
    for name in FILES:
        f = workdir / name
        f.write_bytes(SHIPPED[name])
        LOADERS[name](f)  # no ConfigError: the fuzzing above starts from valid files
