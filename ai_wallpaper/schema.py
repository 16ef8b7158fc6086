"""A small schema engine: typed dataclasses are the single source of truth for every YAML file.

- `option(default, doc, ...)` declares a setting with its documentation and bounds.
- `load_yaml(path)` parses YAML and remembers the line of every key.
- `build(cls, data, source)` checks types, bounds, choices and unknown keys, then each
  dataclass's own `check()` for cross-field rules, and returns the instance plus *all* problems,
  each naming file, line, key path, what was expected and a hint.
- `render_sample(cls)` prints a fully commented YAML file from the same declarations.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from ai_wallpaper.errors import ConfigError

T = TypeVar("T")
KeyPath = tuple[str | int, ...]
_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    doc: str = "",
    *,
    factory: Any = _MISSING,
    min: float | None = None,
    max: float | None = None,
    multiple_of: int | None = None,
    example: Any = None,
) -> Any:
    meta = {"doc": doc, "min": min, "max": max, "multiple_of": multiple_of, "example": example}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


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
    """Where data came from: the file name and the line of each key path."""

    file: str
    lines: dict[KeyPath, int] = dataclasses.field(default_factory=dict)

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


# --- YAML with line numbers -------------------------------------------------------------------


def load_yaml(path: Path) -> tuple[Any, Source]:
    source = Source(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found", hint="create it, or point --config at another file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_yaml(text, source)


def parse_yaml(text: str, source: Source) -> tuple[Any, Source]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError(
            [str(Problem(source.file, line, "", f"invalid YAML: {exc.problem}"))],
            hint="check indentation and quoting near that line",
        ) from None
    finally:
        loader.dispose()
    if node is not None:
        source.lines[()] = node.start_mark.line + 1
        _record_lines(node, (), source.lines)
    return data, source


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _record_lines(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _record_lines(item, (*path, i), lines)


# --- building and validating ------------------------------------------------------------------


class _Ctx:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(self.source.file, self.source.line_of(path), dotted(path), message, hint))


def build(cls: type[T], data: Any, source: Source, path: KeyPath = ()) -> tuple[T | None, list[Problem]]:
    ctx = _Ctx(source)
    value = _convert(cls, {} if data is None else data, path, ctx)
    return (value if not ctx.problems else None), ctx.problems


def build_or_raise(cls: type[T], data: Any, source: Source) -> T:
    value, problems = build(cls, data, source)
    if problems:
        raise ConfigError([str(p) for p in problems], hint=f"fix the keys above in {source.file}")
    assert value is not None
    return value


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of names to {_type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(tp: Any, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(tp, value, path, ctx)
    if origin in (Union, types.UnionType):
        alternatives = get_args(tp)
        if value is None and type(None) in alternatives:
            return None
        for alt in alternatives:
            if alt is type(None):
                continue
            trial = _Ctx(ctx.source)
            result = _convert(alt, value, path, trial)
            if not trial.problems:
                return result
        ctx.add(path, f"expected {_type_name(tp)}, got {value!r}")
        return None
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            ctx.add(path, f"expected {_type_name(tp)}, got {value!r}", f"did you mean {close[0]!r}?" if close else None)
        return value
    if origin is list:
        if not isinstance(value, list):
            ctx.add(path, f"expected {_type_name(tp)}, got {type(value).__name__}")
            return []
        (item_tp,) = get_args(tp)
        return [_convert(item_tp, item, (*path, i), ctx) for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            ctx.add(path, f"expected {_type_name(tp)}, got {type(value).__name__}")
            return {}
        _, item_tp = get_args(tp)
        return {str(k): _convert(item_tp, v, (*path, str(k)), ctx) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            ctx.add(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.add(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            ctx.add(path, f"expected a number, got {value!r}")
            return value
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            ctx.add(path, f"expected a string, got {value!r}", "quote the value")
        return value
    raise TypeError(f"schema type {tp!r} at {dotted(path)} is not supported")


def _convert_dataclass(cls: type, value: Any, path: KeyPath, ctx: _Ctx) -> Any:
    if not isinstance(value, dict):
        ctx.add(path, f"expected a mapping, got {type(value).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "allowed keys: " + ", ".join(fields)
            ctx.add((*path, str(key)), "unknown key", hint)
    kwargs: dict[str, Any] = {}
    before = len(ctx.problems)
    for name, f in fields.items():
        sub = (*path, name)
        if name in value:
            converted = _convert(hints[name], value[name], sub, ctx)
            _check_bounds(f, converted, sub, ctx)
            kwargs[name] = converted
        elif f.default is _MISSING and f.default_factory is _MISSING:
            ctx.add(sub, "required key is missing", f"add `{name}:` ({_type_name(hints[name])})")
    if len(ctx.problems) != before:
        return None
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        ctx.add(path, str(exc))
        return None
    check = getattr(obj, "check", None)
    if callable(check):
        for item in check():
            sub_path, message, *hint = item
            ctx.add((*path, *sub_path), message, hint[0] if hint else None)
    return obj


def _check_bounds(f: dataclasses.Field[Any], value: Any, path: KeyPath, ctx: _Ctx) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    lo, hi, mult = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("multiple_of")
    if lo is not None and value < lo:
        ctx.add(path, f"must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        ctx.add(path, f"must be <= {hi}, got {value}")
    if mult and isinstance(value, int) and value % mult:
        lower = value - value % mult
        ctx.add(path, f"must be a multiple of {mult}, got {value}", f"use {lower} or {lower + mult}")


# --- sample rendering -------------------------------------------------------------------------


def render_sample(cls: type, header: Iterable[str] = ()) -> str:
    lines = [f"# {h}" if h else "#" for h in header]
    _render(cls, cls(), 0, lines)
    return "\n".join(lines) + "\n"


def _render(cls: type, instance: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        doc = f.metadata.get("doc", "")
        if lines and indent == 0:
            lines.append("")
        for doc_line in doc.splitlines() or [""]:
            if doc_line:
                lines.append(f"{pad}# {doc_line}")
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            lines.append(f"{pad}{f.name}:")
            _render(type(value), value, indent + 1, lines)
            continue
        example = f.metadata.get("example")
        if example is not None and value in (None, [], {}):
            dumped = yaml.safe_dump({f.name: example}, sort_keys=False, default_flow_style=False).rstrip()
            lines.append(f"{pad}# example:")
            lines.extend(f"{pad}#   {ln}" for ln in dumped.splitlines())
        lines.append(f"{pad}# {_bounds_text(f, hints[f.name])}")
        lines.append(f"{pad}{f.name}: {_flow(value)}")


def _flow(value: Any) -> str:
    dumped = yaml.safe_dump(_plain(value), default_flow_style=True, width=1000, sort_keys=False)
    return "\n".join(ln for ln in dumped.strip().splitlines() if ln != "...")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _bounds_text(f: dataclasses.Field[Any], tp: Any) -> str:
    parts = [f"type: {_type_name(tp)}"]
    if f.metadata.get("min") is not None:
        parts.append(f"min {f.metadata['min']}")
    if f.metadata.get("max") is not None:
        parts.append(f"max {f.metadata['max']}")
    if f.metadata.get("multiple_of"):
        parts.append(f"multiple of {f.metadata['multiple_of']}")
    return "; ".join(parts)


def to_plain(value: Any) -> Any:
    """Dataclass tree -> plain dicts/lists (for run.json, hashing, `--json`)."""
    return _plain(value)
