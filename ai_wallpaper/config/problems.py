"""Where a config value came from (`Source`: file and line of each key path), what is wrong with it
(`Problem`: file, line, key path, message, hint) and the problems of one file (`Collector`).
Shared by yaml_loading and schema."""

from __future__ import annotations

import dataclasses
import difflib
import reprlib
from dataclasses import dataclass
from typing import Any

KeyPath = tuple[str | int, ...]
MAX_LISTED = 500  # problems listed per file; the rest are counted (a broken 200 KiB file can have 20,000)
SUGGESTIONS = 200  # "did you mean" hints per file: each costs difflib time, and 200 is plenty to read
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.path}:" if self.path else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}:{key} {self.message}{hint}"


@dataclass
class Source:
    """Where data came from: the file name, the line of each key path, and the problems found
    while reading it that do not stop parsing (duplicate keys); `schema.build` reports those."""

    file: str
    lines: dict[KeyPath, int] = dataclasses.field(default_factory=dict)
    problems: list[Problem] = dataclasses.field(default_factory=list)

    def line_of(self, path: KeyPath) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def show(value: Any) -> str:
    """A value for a message: its repr, cut short (a wrong value can be a 200 KiB string)."""
    try:
        return _REPR.repr(value)
    except ValueError:  # an int past Python's 4300-digit str() limit
        return f"an integer of {value.bit_length()} bits"


def key_name(key: Any) -> str:
    """A mapping key as a key-path part (YAML keys may also be numbers, dates, null...)."""
    try:
        return str(key)
    except ValueError:  # an int past the 4300-digit str() limit
        return show(key)


class Collector:
    """The problems found while building one file: counted all, listed up to MAX_LISTED."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.count = 0  # problems found, listed or not
        self.suggestions = SUGGESTIONS

    def close_match(self, word: str, choices: list[str]) -> str | None:
        """The closest choice, for "did you mean"; difflib is slow, so only for the first few."""
        if self.suggestions <= 0:
            return None
        self.suggestions -= 1
        close = difflib.get_close_matches(word, choices, n=1)
        return close[0] if close else None

    def add(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        self.count += 1
        if self.count <= MAX_LISTED:
            self.problems.append(Problem(self.source.file, self.source.line_of(path), dotted(path), message, hint))
