"""Reading model weight files as data only: no file we load can run code.

Model sites distribute weights in formats that differ in what loading them can do:

- `.safetensors`: a JSON header and raw tensors; reading it cannot execute anything.
- a `torch.save` file (`.pth`/`.ckpt`/`.bin`/`.pt`, zip or legacy pickle): a pickle. Plain unpickling
  runs whatever the pickle names (`__reduce__`), so it is read with `torch.load(weights_only=True)`,
  torch's allow-list unpickler that rebuilds tensors and plain containers and refuses everything else.
- a TorchScript archive (`torch.jit.save`, often named `.pt`): a zip holding Python source under
  `code/` that `torch.jit.load` compiles and runs. spandrel's `load_from_file` tries `torch.jit.load`
  first for every `.pt`, so upscalers never go through it: we sniff the archive's contents, refuse
  TorchScript whatever the suffix, and hand spandrel a state dict (`load_from_state_dict`).

`sniff` is torch-free so `plan` and `config validate` can refuse a TorchScript file before any model
loads; `read_state_dict` imports torch when called.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

from ai_wallpaper.core.errors import ModelError

FileFormat = Literal["safetensors", "torch-zip", "pickle", "torchscript", "unknown"]

_PICKLE_PROTOCOL_2_PLUS = b"\x80"  # a legacy (non-zip) torch.save file starts with a pickle opcode


def is_torchscript_archive(names: list[str]) -> bool:
    """TorchScript zips keep compiled Python under `<archive>/code/` and `<archive>/constants.pkl`;
    `torch.save` zips hold only `data.pkl`, `data/<n>`, `version`, `byteorder` and `.data/`."""
    for name in names:
        inner = name.split("/", 1)[1] if "/" in name else name
        if inner.startswith("code/") or inner == "constants.pkl":
            return True
    return False


def sniff(file: Path) -> FileFormat:
    """What a weights file really is, from its bytes (never from its suffix)."""
    try:
        with file.open("rb") as fh:
            head = fh.read(16)
    except OSError as err:
        raise ModelError(f"cannot read {file}: {err.strerror or err}") from None
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(file) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "unknown"
        if is_torchscript_archive(names):
            return "torchscript"
        return "torch-zip" if any(n.endswith("data.pkl") for n in names) else "unknown"
    if head[:1] == _PICKLE_PROTOCOL_2_PLUS:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{":  # u64 header length, then the JSON header
        return "safetensors"
    return "unknown"


def refuse_executable(file: Path, setting: str) -> FileFormat:
    """Raise ModelError for a TorchScript archive or a pickle naming callables no state dict needs
    (loading either runs code); return the format otherwise. Torch-free: plan and validate use it."""
    kind = sniff(file)
    if kind == "torchscript":
        raise ModelError(
            f"{setting}: {file} is a TorchScript archive: loading it would run the Python code stored "
            "inside it, so it is refused",
            hint="use a plain weights file of the same model (.safetensors, or a .pth state dict); "
                 "model sites usually offer one")
    if kind in ("torch-zip", "pickle"):
        from ai_wallpaper.catalog.pickle_scan import forbidden_globals

        if foreign := forbidden_globals(file):
            raise ModelError(
                f"{setting}: {file} was refused: its pickle asks to call {', '.join(foreign[:5])} when loaded, "
                "which no weights file needs (it would run code)",
                hint="delete it; use a .safetensors version of the model from a source you trust")
    return kind


def read_state_dict(file: Path, setting: str) -> dict[str, Any]:
    """Tensors of a weights file, read as data: safetensors, or torch's weights-only unpickler."""
    kind = refuse_executable(file, setting)
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(file), device="cpu"))
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise ModelError(f"{setting}: {file} is not a readable .safetensors file ({first_line(err)})",
                             hint="re-download it; the file may be truncated") from err
    if kind not in ("torch-zip", "pickle"):
        raise ModelError(f"{setting}: {file} is not a weights file (neither safetensors nor a torch.save "
                         "state dict)", hint="re-download it; the file may be truncated or of another kind")
    import pickle

    import torch

    try:
        loaded = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ModelError(
            f"{setting}: {file} was refused: it holds pickled objects other than tensors, which could run "
            f"code when loaded ({first_line(err)})",
            hint="use a .safetensors version of the model, or a plain state-dict .pth") from None
    except Exception as err:  # zip/pickle damage, wrong magic numbers...
        raise ModelError(f"{setting}: cannot read {file}: {first_line(err)}",
                         hint="re-download it; the file may be truncated") from err
    if not isinstance(loaded, dict):
        raise ModelError(f"{setting}: {file} holds a {type(loaded).__name__}, not a state dict",
                         hint="use a weights file (a dict of tensor names to tensors)")
    return loaded


def first_line(err: BaseException) -> str:
    """The first line of an exception message, at most 300 characters (for one-line errors)."""
    lines = str(err).strip().splitlines()
    line = lines[0] if lines else type(err).__name__
    return line if len(line) <= 300 else line[:297] + "..."
