"""The LoRA library (loras.yaml): schema, loading, and cheap file checks.

Two separate questions, answered separately:
- Is loras.yaml well formed? `load_library` validates it with the schema engine and reports every
  problem at once. It does NOT require the LoRA files to exist, so the shipped library can list
  downloadable examples (disabled) and a missing file never breaks every run.
- Is this file a usable SDXL LoRA? `check_file` reads only the safetensors header (8 bytes of
  length + a JSON table of tensor names/shapes), never the tensors and never torch, and classifies
  it: sdxl-lora, sd15-lora, loha, lokr, not-lora, unreadable or missing. Only when the header is
  an SDXL LoRA is the whole file hashed (sha256, recorded in the plan and run.json); hashes are
  memoised by (path, size, mtime) in memory and optionally in a JSON cache file.
"""


from __future__ import annotations

import hashlib
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from ai_wallpaper.config.locations import lora_dir, lora_library_file, resolve_under
from ai_wallpaper.config.schema import KeyPath, Problem, Source, build, dotted, load_yaml, option
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.paths import Paths

logger = log.get(__name__)

Check = list[tuple[KeyPath, str] | tuple[KeyPath, str, str]]
FileKind = Literal["sdxl-lora", "sd15-lora", "loha", "lokr", "not-lora", "unreadable", "missing"]
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
WEIGHT_LIMIT = 3.0  # |weight| above this burns any SDXL image; almost certainly a typo


# --- loras.yaml schema ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraEntry:
    file: str = option(doc="The .safetensors file: a name inside the LoRA folder, or an absolute path.")
    type: str = option("style", "What it changes: style, detail, character, concept, lighting,\n"
                                "composition... stacking_rules.type_limits counts LoRAs per type.")
    weight_range: list[float] = option(
        factory=lambda: [0.6, 0.9], doc="[low, high]: the weight is drawn uniformly in this range (seeded).")
    trigger_words: list[str] = option(
        factory=list, doc="Words the LoRA was trained on; inserted once into the prompt.")
    compatible_themes: list[str] = option(factory=list, doc="Theme keys this LoRA suits; empty = any theme.")
    compatible_categories: list[str] = option(factory=list, doc="Theme categories it suits; empty = any.")
    moods: list[str] = option(
        factory=list, doc="Mood words it has an affinity for (night, rain, winter, golden_hour...). If set,\n"
                          "it is only picked at random when one of them matches the mood.")
    chance: float = option(0.5, "Probability it is added when eligible and not required/preferred.",
                           min=0.0, max=1.0)
    base: Literal["sdxl"] = option("sdxl", "Base model family; only SDXL LoRAs are supported.")
    enabled: bool = option(True, "false keeps the entry listed but never used (e.g. not downloaded yet).")
    description: str = option("", "Free text shown by `ai-wallpaper loras list`.")
    url: str | None = option(None, "Where to download it (documentation only; nothing is downloaded).")

    def check(self) -> Check:
        problems: Check = []
        if len(self.weight_range) != 2:
            problems.append((("weight_range",), f"needs [low, high], got {len(self.weight_range)} numbers",
                             "e.g. weight_range: [0.5, 0.8]"))
        else:
            lo, hi = self.weight_range
            if lo > hi:
                problems.append((("weight_range",), f"low {lo} is above high {hi}", f"write [{hi}, {lo}]"))
            if max(abs(lo), abs(hi)) > WEIGHT_LIMIT:
                problems.append((("weight_range",),
                                 f"weights must lie within ±{WEIGHT_LIMIT}, got {self.weight_range}"))
        if not self.file.strip():
            problems.append((("file",), "is empty", "name the .safetensors file"))
        elif not self.file.endswith(".safetensors"):
            problems.append((("file",), f"must be a .safetensors file, got {self.file!r}",
                             "convert .ckpt/.pt LoRAs to safetensors; pickled files are not loaded"))
        if not KEY_RE.match(self.type):
            problems.append((("type",), f"must be one word (letters, digits, _ . -), got {self.type!r}"))
        for i, word in enumerate(self.trigger_words):
            if not word.strip():
                problems.append((("trigger_words", i), "is empty"))
        return problems


@dataclass(frozen=True)
class StackingRules:
    max_loras: int = option(3, "At most this many LoRAs in one stack.", min=0, max=8)
    type_limits: dict[str, int] = option(
        factory=dict, doc="At most N LoRAs of a type; types not listed are limited only by max_loras.",
        example={"style": 1, "detail": 1, "lighting": 1})
    weight_sum_max: float = option(2.0, "Upper bound on the sum of |weight| over the stack.",
                                   min=0.0, max=24.0)

    def check(self) -> Check:
        return [(("type_limits", name), f"must be >= 0, got {n}")
                for name, n in self.type_limits.items() if n < 0]


@dataclass(frozen=True)
class LoraLibraryFile:
    stacking_rules: StackingRules = option(factory=StackingRules, doc="How LoRAs may be combined.")
    loras: dict[str, LoraEntry] = option(factory=dict, doc="Your LoRAs, by key (themes refer to these keys).")


# --- the loaded library --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraSpec:
    """One library entry with its file resolved to an absolute path."""

    key: str
    path: Path
    type: str
    weight_range: tuple[float, float]
    trigger_words: tuple[str, ...] = ()
    compatible_themes: tuple[str, ...] = ()
    compatible_categories: tuple[str, ...] = ()
    moods: tuple[str, ...] = ()
    chance: float = 0.5
    enabled: bool = True
    description: str = ""
    url: str | None = None
    where: str = ""  # "loras.yaml:12" for messages


@dataclass(frozen=True)
class LoraLibrary:
    file: Path
    directory: Path
    rules: StackingRules
    loras: Mapping[str, LoraSpec] = field(default_factory=lambda: MappingProxyType({}))
    enabled: bool = True  # settings.loras.enabled
    hash_cache: Path | None = None

    def status(self, key: str) -> FileStatus:
        return check_file(self.loras[key].path, hash_cache=self.hash_cache)


def load_library(paths: Paths, settings: Settings, settings_path: Path) -> LoraLibrary:
    """Validate loras.yaml (all problems at once) and resolve files; files need not exist."""
    file = lora_library_file(paths, settings, settings_path)
    directory = lora_dir(paths, settings, settings_path)
    hash_cache = paths.cache_dir / "lora-sha256.json"
    if not file.exists() and not settings.loras.file:
        logger.info("no loras.yaml found; the LoRA library is empty", looked_at=str(file))
        return LoraLibrary(file, directory, StackingRules(), enabled=settings.loras.enabled,
                           hash_cache=hash_cache)
    data, source = load_yaml(file)
    parsed, problems = build(LoraLibraryFile, data, source)
    problems = _key_problems(data, source) + problems
    specs: dict[str, LoraSpec] = {}
    if parsed is not None:
        seen: dict[Path, str] = {}
        for key, entry in parsed.loras.items():
            path = resolve_under(entry.file, directory).resolve()
            where_path: KeyPath = ("loras", key, "file")
            if path in seen:
                problems.append(Problem(source.file, source.line_of(where_path), dotted(where_path),
                                        f"same file as LoRA {seen[path]!r}: {path}", "list each file once"))
            seen[path] = key
            lo, hi = entry.weight_range
            specs[key] = LoraSpec(
                key=key, path=path, type=entry.type, weight_range=(float(lo), float(hi)),
                trigger_words=tuple(w.strip() for w in entry.trigger_words),
                compatible_themes=tuple(entry.compatible_themes),
                compatible_categories=tuple(entry.compatible_categories),
                moods=tuple(mood_word(m) for m in entry.moods), chance=entry.chance, enabled=entry.enabled,
                description=entry.description, url=entry.url,
                where=f"{file.name}:{source.line_of(('loras', key)) or '?'}",
            )
    if problems:
        raise ConfigError([str(p) for p in problems], hint=f"fix the keys above in {file}")
    assert parsed is not None
    return LoraLibrary(file=file, directory=directory, rules=parsed.stacking_rules,
                       loras=MappingProxyType(specs), enabled=settings.loras.enabled, hash_cache=hash_cache)


def _key_problems(data: Any, source: Source) -> list[Problem]:
    """LoRA keys must be plain names (duplicate keys are found for every file by yaml_loading)."""
    table = data.get("loras") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        return []
    problems: list[Problem] = []
    for key in table:
        if not KEY_RE.match(str(key)):
            path: KeyPath = ("loras", str(key))
            problems.append(Problem(source.file, source.line_of(path), dotted(path),
                                    f"key {key!r} must be letters, digits, _ . - (no spaces)",
                                    "themes' lora_hints refer to LoRAs by this key"))
    return problems


# --- file checks (header only, no torch) --------------------------------------------------------


@dataclass(frozen=True)
class FileStatus:
    ok: bool
    kind: FileKind
    message: str
    sha256: str = ""
    targets: tuple[str, ...] = ()  # which of unet, text_encoder, text_encoder_2 it patches
    tensors: int = 0


_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit
_LORA_WEIGHT = re.compile(r"(lora_down|lora_up|lora_A|lora_B|lora\.down|lora\.up"
                          r"|lora_linear_layer\.(down|up))(\.[A-Za-z0-9_]+)?\.weight$")
# SDXL has no attention at UNet level 0, 3 levels, up to 10 transformer blocks per attention, and
# kohya names its UNet layers after the original SGM code (input_blocks...); SD1.x has attention at
# level 0 and 4 levels. Text encoder 2 exists only in SDXL.
_SDXL_UNET = re.compile(r"input_blocks|middle_block|output_blocks|transformer_blocks[._][1-9]"
                        r"|up_blocks[._]0[._]attentions")
_SD15_UNET = re.compile(r"down_blocks[._]0[._]attentions|up_blocks[._]3[._]attentions"
                        r"|down_blocks[._]3[._]attentions")
_CROSS_K = re.compile(r"attn2[._]to_k[._].*(lora_down|lora_A|lora\.down|lora_linear_layer\.down)")
_HASHES: dict[tuple[str, int, int], str] = {}


def read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header; raises ValueError saying what is wrong with the file."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"only {size} bytes: too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > _MAX_HEADER or n > size - 8:
            raise ValueError("not a safetensors file (bad header length); is it a .ckpt/.pt renamed?")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("safetensors header is not valid JSON: corrupt, or not safetensors") from None
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not a JSON object")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise ValueError(f"tensor {name!r} has no valid data_offsets: corrupt header") from None
    if 8 + n + end != size:
        raise ValueError(f"truncated or padded: the header describes {8 + n + end} bytes, the file has {size}"
                         " (an interrupted download?)")
    return header


def classify(header: Mapping[str, Any]) -> tuple[FileKind, str, tuple[str, ...]]:
    """What kind of file a safetensors header describes, with a message for the user."""
    keys = [k for k in header if k != "__metadata__"]
    if any(".hada_w" in k or ".hada_t" in k for k in keys):
        return "loha", "LyCORIS LoHa file: diffusers cannot load LoHa; use a plain LoRA version", ()
    if any(".lokr_w" in k or ".lokr_t" in k for k in keys):
        return "lokr", "LyCORIS LoKr file: diffusers cannot load LoKr; use a plain LoRA version", ()
    lora_keys = [k for k in keys if _LORA_WEIGHT.search(k)]
    if not lora_keys:
        full = any(k.startswith("model.diffusion_model.") for k in keys)
        what = "a full Stable Diffusion checkpoint" if full else f"{len(keys)} tensors"
        return "not-lora", f"not a LoRA: no lora_up/lora_down or lora_A/lora_B weights ({what})", ()
    targets: list[str] = []
    if any(k.startswith(("unet.", "lora_unet_")) for k in lora_keys):
        targets.append("unet")
    if any(k.startswith(("text_encoder.", "lora_te1_", "lora_te_")) for k in lora_keys):
        targets.append("text_encoder")
    if any(k.startswith(("text_encoder_2.", "lora_te2_")) for k in lora_keys):
        targets.append("text_encoder_2")
    if not targets:
        prefix = lora_keys[0].split(".")[0].split("_")[0]
        return "not-lora", f"a LoRA for another model family (keys start with {prefix!r}), not SDXL", ()
    unet_keys = [k for k in lora_keys if k.startswith(("unet.", "lora_unet_"))]
    # attn2.to_k's LoRA down matrix is (rank, cross-attention width): 768 SD1, 1024 SD2, 2048 SDXL.
    cross_dims = {int(header[k]["shape"][-1]) for k in unet_keys
                  if _CROSS_K.search(k) and header[k].get("shape")}
    sdxl = "text_encoder_2" in targets or any(_SDXL_UNET.search(k) for k in unet_keys) or 2048 in cross_dims
    sd15 = (any(k.startswith("lora_te_") for k in lora_keys) or any(_SD15_UNET.search(k) for k in unet_keys)
            or bool(cross_dims & {768, 1024}))
    found = ", ".join(targets)
    if sd15 and not sdxl:
        return "sd15-lora", f"an SD1.x/2.x LoRA ({found}); SDXL needs an SDXL LoRA", tuple(targets)
    if sd15 and sdxl:
        return "sd15-lora", f"mixed SD1.x and SDXL layer names ({found}); not an SDXL LoRA", tuple(targets)
    if not sdxl and targets == ["text_encoder"]:
        return "sd15-lora", "patches a single text encoder only: an SD1.x LoRA, not SDXL", tuple(targets)
    note = "" if sdxl else " (SDXL layout assumed: no layer names were conclusive)"
    return "sdxl-lora", f"SDXL LoRA: {found}; {len(lora_keys)} LoRA weights{note}", tuple(targets)


def check_file(path: Path, *, hash_cache: Path | None = None) -> FileStatus:
    """Header-only check of a LoRA file; the sha256 is computed only for a usable SDXL LoRA."""
    path = Path(path)
    if not path.exists():
        return FileStatus(False, "missing", f"file not found: {path}")
    if not path.is_file():
        return FileStatus(False, "unreadable", f"not a regular file: {path}")
    try:
        header = read_header(path)
    except PermissionError:
        return FileStatus(False, "unreadable", f"no permission to read {path}")
    except (OSError, ValueError) as exc:
        return FileStatus(False, "unreadable", f"{path.name}: {exc}")
    kind, message, targets = classify(header)
    tensors = len(header) - ("__metadata__" in header)
    if kind != "sdxl-lora":
        return FileStatus(False, kind, f"{path.name}: {message}", targets=targets, tensors=tensors)
    try:
        digest = file_sha256(path, hash_cache)
    except OSError as exc:
        return FileStatus(False, "unreadable", f"{path.name}: cannot read: {exc.strerror}")
    return FileStatus(True, kind, message, digest, targets, tensors)


def file_sha256(path: Path, cache_file: Path | None = None) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _HASHES:
        return _HASHES[key]
    disk = _read_hash_cache(cache_file)
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    cached = disk.get(key[0])
    if isinstance(cached, dict) and cached.get("stamp") == stamp and isinstance(cached.get("sha256"), str):
        _HASHES[key] = cached["sha256"]
        return _HASHES[key]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    _HASHES[key] = h.hexdigest()
    if cache_file is not None:
        disk[key[0]] = {"stamp": stamp, "sha256": _HASHES[key]}
        try:
            from ai_wallpaper.core.atomic import write_json

            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_json(cache_file, disk)
        except OSError as exc:  # a cache is an optimisation; never fail a run for it
            logger.debug("cannot write LoRA hash cache", file=str(cache_file), error=str(exc))
    return _HASHES[key]


def _read_hash_cache(cache_file: Path | None) -> dict[str, Any]:
    if cache_file is None or not cache_file.exists():
        return {}
    try:
        data = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def mood_word(word: str) -> str:
    """Mood words compare case- and separator-insensitively: 'Golden Hour' == 'golden_hour'."""
    return re.sub(r"[\s-]+", "_", word.strip().lower())


def sanitize(name: str) -> str:
    """A LoRA key as a safe adapter/file-name fragment."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "lora"


__all__ = ["FileStatus", "LoraLibrary", "LoraSpec", "StackingRules", "check_file", "classify", "load_library"]
