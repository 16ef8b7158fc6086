"""Which Python objects a pickled weights file would ask for, read without unpickling it.

A pickle runs code by naming a callable (opcodes GLOBAL / STACK_GLOBAL / INST) and calling it. Every
real `torch.save` state dict names only torch's tensor-rebuilding helpers, storage and dtype types,
`collections.OrderedDict` and a few builtins. Listing the names with `pickletools` (which only
decodes opcodes) lets `plan`, `config validate` and `generate` refuse a file that asks for anything
else (`os.system`, `subprocess`, `builtins.eval`...) before the first stage runs, instead of minutes
later when the stage loads it. The load itself still goes through `torch.load(weights_only=True)`
(model_files.py), which is the real guard: this scan only fails early and names the culprit.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path
from typing import IO

# Module families a state dict may name; anything else is refused. Deliberately wider than torch's
# weights-only allow-list (any `torch.*`), so no genuine checkpoint is ever refused here: torch's
# own unpickler still rejects a torch callable it does not allow, at load time.
_ALLOWED_MODULES = ("torch", "collections", "_codecs")
_ALLOWED_BUILTINS = {"set", "frozenset", "bytearray", "complex", "slice", "int", "float", "bool", "str",
                     "tuple", "list", "dict", "bytes"}
_MAX_PICKLES = 6  # the legacy (non-zip) torch.save format is five pickles followed by raw storage bytes
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING",
               "STRING"}


def _globals_in(stream: IO[bytes]) -> set[str]:
    """Dotted names one pickle in `stream` would import (reads up to its STOP opcode)."""
    found: set[str] = set()
    strings: list[str] = []  # recent string pushes, also through the memo, for STACK_GLOBAL
    memo: dict[int, str] = {}
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name in _STRING_OPS and isinstance(arg, str):
            strings.append(arg)
        elif name in ("GLOBAL", "INST") and isinstance(arg, str):
            found.add(arg.replace(" ", ".", 1))
        elif name == "STACK_GLOBAL":
            found.add(".".join(strings[-2:]) if len(strings) >= 2 else "<unknown>")
        elif name == "MEMOIZE" and strings:
            memo[len(memo)] = strings[-1]
        elif name in ("PUT", "BINPUT", "LONG_BINPUT") and strings and isinstance(arg, int):
            memo[arg] = strings[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int) and arg in memo:
            strings.append(memo[arg])
        if name == "STOP":
            break
    return found


def pickle_globals(file: Path) -> set[str]:
    """Every dotted name the pickles of a torch.save file (zip or legacy) refer to."""
    if zipfile.is_zipfile(file):
        with zipfile.ZipFile(file) as archive:
            names = [n for n in archive.namelist() if n.endswith(".pkl")]
            found: set[str] = set()
            for member in names:
                with archive.open(member) as fh:
                    found |= _globals_in(fh)
            return found
    found = set()
    with file.open("rb") as raw:
        fh = io.BufferedReader(raw)
        for _ in range(_MAX_PICKLES):
            if fh.peek(1)[:1] != b"\x80":
                break  # raw storage bytes follow the pickles
            found |= _globals_in(fh)
    return found


def is_allowed(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    if module in ("builtins", "__builtin__"):  # protocol 2 pickles still write Python 2's name
        return attr in _ALLOWED_BUILTINS
    return any(module == m or module.startswith(m + ".") for m in _ALLOWED_MODULES)


def forbidden_globals(file: Path) -> list[str]:
    """The names a loader would be asked to call that no weights file needs; [] for a clean file.
    A pickle too damaged to decode gives [] here: the loader then reports the damage itself."""
    try:
        return sorted(n for n in pickle_globals(file) if not is_allowed(n))
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, KeyError, IndexError):
        return []
