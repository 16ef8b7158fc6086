"""A small schema engine: typed dataclasses are the single source of truth for every YAML file.

- `option(default, doc, ...)` declares a setting with its documentation and bounds.
- `load_yaml(path)` parses YAML within bounds and remembers the line of every key (yaml_loading).
- `build(cls, data, source)` checks types, bounds, choices and unknown keys, then each
  dataclass's own `check()` for cross-field rules, and returns the instance plus *all* problems,
  each naming file, line, key path, what was expected and a hint.
- `render_sample(cls)` prints a fully commented YAML file from the same declarations (config/sample.py).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from ai_wallpaper.config.problems import MAX_LISTED, Collector, KeyPath, Problem, Source, dotted
from ai_wallpaper.config.problems import key_name as _name
from ai_wallpaper.config.problems import show as _show
from ai_wallpaper.config.sample import type_name as _type_name
from ai_wallpaper.core.errors import ConfigError

T = TypeVar("T")
_MISSING = dataclasses.MISSING
_SURROGATE = re.compile("[\ud800-\udfff]")


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


# --- building and validating ------------------------------------------------------------------


def build(cls: type[T], data: Any, source: Source, path: KeyPath = ()) -> tuple[T | None, list[Problem]]:
    """The instance, or None and every problem: the file's own (duplicate keys) and the schema's."""
    ctx = Collector(source)
    if path == ():
        ctx.count = len(source.problems)
        ctx.problems.extend(source.problems[:MAX_LISTED])
    value = _convert(cls, {} if data is None else data, path, ctx)
    if ctx.count > MAX_LISTED:
        more = f"... and {ctx.count - MAX_LISTED} more problems (the first {MAX_LISTED} are listed)"
        ctx.problems.append(Problem(source.file, source.line_of(path), dotted(path), more))
    return (value if not ctx.problems else None), ctx.problems


def build_or_raise(cls: type[T], data: Any, source: Source) -> T:
    value, problems = build(cls, data, source)
    if problems:
        raise ConfigError([str(p) for p in problems], hint=f"fix the keys above in {source.file}")
    assert value is not None
    return value


def _takes_float(tp: Any) -> bool:
    return tp is float or (get_origin(tp) in (Union, types.UnionType) and float in get_args(tp))


def _convert(tp: Any, value: Any, path: KeyPath, ctx: Collector) -> Any:
    origin = get_origin(tp)
    if isinstance(value, float) and not math.isfinite(value) and _takes_float(tp):
        # NaN passes every `min`/`max` comparison and inf overflows sums: refuse both here.
        ctx.add(path, f"must be a finite number, got {value}", "write a plain number; .nan and .inf are not allowed")
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(tp, value, path, ctx)
    if origin in (Union, types.UnionType):
        alternatives = get_args(tp)
        if value is None and type(None) in alternatives:
            return None
        for alt in alternatives:
            if alt is type(None):
                continue
            trial = Collector(ctx.source)
            trial.suggestions = ctx.suggestions
            result = _convert(alt, value, path, trial)
            ctx.suggestions = trial.suggestions
            if not trial.count:
                return result
            if not any(p.message.startswith("expected ") for p in trial.problems):
                ctx.problems += trial.problems  # the right type with a wrong value: its message says more
                ctx.count += trial.count
                return None
        ctx.add(path, f"expected {_type_name(tp)}, got {_show(value)}")
        return None
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = ctx.close_match(value if isinstance(value, str) else _show(value), [str(c) for c in choices])
            hint = f"did you mean {close!r}?" if close else None
            ctx.add(path, f"expected {_type_name(tp)}, got {_show(value)}", hint)
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
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = _name(k)
            if name in out:  # `1:` and `'1':` are one name
                ctx.add((*path, name), f"key {_show(k)} repeats the name {name!r}", "remove one of them")
            out[name] = _convert(item_tp, v, (*path, name), ctx)
        return out
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            ctx.add(path, f"expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.add(path, f"expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            ctx.add(path, f"expected a number, got {_show(value)}")
            return value
        try:
            return float(value)
        except OverflowError:  # an int beyond float range
            ctx.add(path, f"is too large: {_show(value)}")
            return None
    if tp is str:
        if not isinstance(value, str):
            ctx.add(path, f"expected a string, got {_show(value)}", "quote the value")
        elif "\x00" in value or _SURROGATE.search(value):  # YAML escapes can make both; no file path takes them
            ctx.add(path, f"contains a NUL or an unpaired surrogate character: {_show(value)}", "remove it")
        return value
    raise TypeError(f"schema type {tp!r} at {dotted(path)} is not supported")


class _Unknown(Exception):
    """A check() read a field that did not convert: that check cannot be evaluated."""


class _Partial:
    """A dataclass instance some of whose fields did not convert, so that its check() still runs
    on the fields that did: reading a failed field raises _Unknown, which skips that check (the
    field has its own problem already). Never returned from `build`."""

    __slots__ = ("_failed", "_obj")

    def __init__(self, obj: Any, failed: set[str]) -> None:
        self._obj = obj
        self._failed = failed

    def __getattr__(self, name: str) -> Any:
        if name in self._failed:
            raise _Unknown(name)
        return getattr(self._obj, name)


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """Type hints and init fields of a schema dataclass (get_type_hints compiles every annotation)."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls) if f.init}


def _convert_dataclass(cls: type, value: Any, path: KeyPath, ctx: Collector) -> Any:
    if not isinstance(value, dict):
        ctx.add(path, f"expected a mapping, got {type(value).__name__}")
        return None
    hints, fields = _fields(cls)
    for key in value:
        if key not in fields:
            name = _name(key)
            close = ctx.close_match(name, list(fields))
            hint = f"did you mean {close!r}?" if close else "allowed keys: " + ", ".join(fields)
            ctx.add((*path, name), "unknown key", hint)
    kwargs: dict[str, Any] = {}
    failed: set[str] = set()
    for name, f in fields.items():
        sub = (*path, name)
        before = ctx.count
        if name in value:
            converted = _convert(hints[name], value[name], sub, ctx)
            _check_bounds(f, converted, sub, ctx)
            kwargs[name] = converted
        elif f.default is _MISSING and f.default_factory is _MISSING:
            ctx.add(sub, "required key is missing", f"add `{name}:` ({_type_name(hints[name])})")
            kwargs[name] = None
        # A nested section stays readable: a _Partial if some of its fields failed, else an instance
        # whose problems came from its own check() (each of its values is valid on its own).
        result = kwargs.get(name)
        if ctx.count != before and not (isinstance(result, _Partial) or dataclasses.is_dataclass(result)):
            failed.add(name)
    partial = bool(failed) or any(isinstance(v, _Partial) for v in kwargs.values())
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if not partial:
            ctx.add(path, str(exc))
        return None
    subject = _Partial(obj, failed) if partial else obj
    check = getattr(cls, "check", None)
    if callable(check):
        try:
            found = check(subject)
        except _Unknown:
            found = []  # it needs a field that is already reported wrong
        for item in found:
            sub_path, message, *hint = item
            ctx.add((*path, *sub_path), message, hint[0] if hint else None)
    return subject


def _check_bounds(f: dataclasses.Field[Any], value: Any, path: KeyPath, ctx: Collector) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    lo, hi, mult = f.metadata.get("min"), f.metadata.get("max"), f.metadata.get("multiple_of")
    if lo is not None and value < lo:
        ctx.add(path, f"must be >= {lo}, got {_show(value)}")
    if hi is not None and value > hi:
        ctx.add(path, f"must be <= {hi}, got {_show(value)}")
    if mult and isinstance(value, int) and value % mult:
        lower = value - value % mult
        ctx.add(path, f"must be a multiple of {mult}, got {_show(value)}", f"use {lower} or {lower + mult}")
