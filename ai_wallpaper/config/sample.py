"""How a schema reads to a person: type names in words, plain data, and the commented sample file.

`render_sample(cls)` writes a fully commented YAML file from the same `option(...)` declarations that
`schema.build` checks against, so the sample can never disagree with the validator. Kept apart from
the validator, which imports `type_name` from here for its messages.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, Union, get_args, get_origin

import yaml


def type_name(tp: Any) -> str:
    """A schema type in words, as both problem messages and sample comments say it."""
    origin = get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of names to {type_name(get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


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
    dumped = yaml.safe_dump(to_plain(value), default_flow_style=True, width=1000, sort_keys=False)
    return "\n".join(ln for ln in dumped.strip().splitlines() if ln != "...")


def _bounds_text(f: dataclasses.Field[Any], tp: Any) -> str:
    parts = [f"type: {type_name(tp)}"]
    if f.metadata.get("min") is not None:
        parts.append(f"min {f.metadata['min']}")
    if f.metadata.get("max") is not None:
        parts.append(f"max {f.metadata['max']}")
    if f.metadata.get("multiple_of"):
        parts.append(f"multiple of {f.metadata['multiple_of']}")
    return "; ".join(parts)


def to_plain(value: Any) -> Any:
    """Dataclass tree -> plain dicts/lists (for run.json, hashing, `--json` and the sample's values)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value
