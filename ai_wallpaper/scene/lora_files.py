"""Is this file a usable SDXL LoRA? Answered from the safetensors header alone, without torch.

`check_file` reads 8 bytes of header length and the JSON table of tensor names and shapes, never the
tensors, and classifies the file: sdxl-lora, sd15-lora, loha, lokr, not-lora, unreadable or missing.
Only an SDXL LoRA is hashed (sha256, recorded in the plan and run.json), through the catalog's hash
cache, so an unchanged file is read once.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ai_wallpaper.catalog.model_fingerprints import file_sha256
from ai_wallpaper.core.untrusted_input import loads_json

FileKind = Literal["sdxl-lora", "sd15-lora", "loha", "lokr", "not-lora", "unreadable", "missing"]


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
        header = loads_json(raw)
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
    cross_dims = {_last_dim(header[k]) for k in unet_keys if _CROSS_K.search(k)}
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


def _last_dim(info: Any) -> int | None:
    # The header is the file's word: a shape that is not a list of integers is simply no evidence.
    shape = info.get("shape") if isinstance(info, dict) else None
    return shape[-1] if isinstance(shape, list) and shape and isinstance(shape[-1], int) else None


def check_file(path: Path, *, cache_dir: Path | None = None) -> FileStatus:
    """Header-only check of a LoRA file; the sha256 is computed only for a usable SDXL LoRA.

    The hash goes through the catalog's one hash cache (`cache_dir`, default the user's cache dir)."""
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
        digest = file_sha256(path, cache_dir)
    except OSError as exc:
        return FileStatus(False, "unreadable", f"{path.name}: cannot read: {exc.strerror}")
    return FileStatus(True, kind, message, digest, targets, tensors)
