"""Reading a YAML config file totally and within bounds, remembering the line of every key.

Any bytes given as settings.yaml, themes.yaml or loras.yaml give data (plus a `Source` with the
line of each key path) or a `ConfigError` whose problem lines name `file:line`: never another
exception, never more than a fraction of a CPU second or a few dozen MB. Each limit is checked
before the work it bounds: the size (`MAX_BYTES`, before parsing); UTF-8 and YAML's printable
characters (the first bad byte or character is named with its line); the nesting depth
(`MAX_DEPTH`) and the number of values *after alias expansion* (`MAX_NODES`), counted while
composing, so a "billion laughs" file is refused after a few dozen events and a recursive alias at
once; numbers of at most `MAX_NUMBER_CHARS` characters (int() of long digit strings is slow).

The node graph is composed here, iteratively, from the parser's events: PyYAML's composers (Python
and C) recurse and count nothing. The events come from libyaml (`yaml.CSafeLoader`: ~10x faster,
same line marks) or, without it, from the pure-Python parser. Duplicate keys, which PyYAML would
silently collapse to the last, are found on the composed graph before any Python object exists and
go to `Source.problems`, which `schema.build` reports with every other problem of the file.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError, SafeConstructor

from ai_wallpaper.config.problems import KeyPath, Problem, Source, dotted, show
from ai_wallpaper.core.errors import ConfigError

try:  # libyaml's parser: same events and line marks, much faster
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

MAX_BYTES = 256 * 1024
MAX_DEPTH = 64
MAX_NODES = 20_000  # the shipped themes.yaml has ~2,300; each costs ~10-25 us to load and check
MAX_NUMBER_CHARS = 100
# YAML's printable set (what PyYAML's reader accepts); anything else is refused with its line.
_NON_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MERGE_TAG = "tag:yaml.org,2002:merge"


# --- reading --------------------------------------------------------------------------------------


def load_yaml(path: Path) -> tuple[Any, Source]:
    source = Source(str(path))
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
            raise ConfigError(f"{path}: not a regular file", hint="point the setting at a YAML file")
        _check_size(st.st_size, source)
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found", hint="create it, or point --config at another file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    _check_size(len(raw), source)  # it grew while we looked
    return parse_yaml(_decode(raw, source), source)


def _check_size(size: int, source: Source) -> None:
    if size > MAX_BYTES:
        raise ConfigError(f"{source.file}: the file is {size:,} bytes ({size / 1024:.1f} KiB), over the "
                          f"{MAX_BYTES // 1024} KiB limit for a config file",
                          hint="is this the right file? config files are a few KiB")


def _decode(raw: bytes, source: Source) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = Problem(source.file, line, "", f"byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                          f"(line {line}, column {column}) is not valid UTF-8", "save the file as UTF-8")
        raise ConfigError([str(problem)], hint="config files must be UTF-8 text") from None


def parse_yaml(text: str, source: Source) -> tuple[Any, Source]:
    bad = _NON_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        _fail(source, line, f"character U+{ord(bad.group()):04X} at line {line}, column {column} "
                            "is not allowed in YAML (a control character or an invalid code point)",
              "remove it; is this a binary file?")
    _check_size(len(text.encode("utf-8")), source)
    loader = _Loader(text)
    try:
        duplicates: Duplicates = {}
        node = _compose(loader, duplicates)
        if node is None:
            source.lines[()] = 1  # problems of an empty file point at its first line
            return {}, source
        source.lines[()] = node.start_mark.line + 1
        _record_lines(node, (), source, duplicates, set())  # before constructing: `<<` rewrites nodes
        data = loader.construct_document(node)
    except _LimitError as exc:
        _fail(source, exc.problem_mark.line + 1 if exc.problem_mark else 1, str(exc.problem),
              "a config file needs neither deep nesting nor long alias chains: write the values out")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = ", ".join(str(part) for part in (exc.context, exc.problem) if part) or str(exc)
        _fail_yaml(source, text, mark.line + 1 if mark else 1, what)
    except yaml.YAMLError as exc:  # ReaderError has no mark (its characters are checked above)
        _fail_yaml(source, text, 1, str(exc))
    finally:
        loader.dispose()
    return data, source


def _fail(source: Source, line: int, message: str, hint: str | None) -> NoReturn:
    raise ConfigError([str(Problem(source.file, line, "", message, hint))],
                      hint=f"fix line {line} of {source.file}")


def _fail_yaml(source: Source, text: str, line: int, problem: str) -> NoReturn:
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    indent = here[:len(here) - len(here.lstrip(" \t"))]
    if "\t" in indent or "'\\t'" in problem or "tab character" in problem:
        _fail(source, line, "a tab is used for indentation on this line; YAML indentation must be spaces",
              "indent with spaces, not tabs")
    _fail(source, line, f"invalid YAML: {problem}", "check indentation and quoting near that line")


# --- composing within limits ----------------------------------------------------------------------


class _LimitError(yaml.MarkedYAMLError):
    pass


class _Loader(_BaseLoader):
    """The safe loader, except that constructing a value can raise nothing but a YAMLError."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's constructors trust the resolver; explicit tags break them:
            # `2026-02-30` (ValueError), `!!timestamp foo` (AttributeError), `!!int foo`...
            what = show(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
            why = f": {exc}" if isinstance(exc, ValueError | OverflowError) else ""
            raise ConstructorError(None, None, f"cannot read {what} as !!{node.tag.rsplit(':', 1)[-1]}{why}",
                                   node.start_mark) from None


def _bounded_number(tag: str) -> Any:
    construct = SafeConstructor.yaml_constructors[tag]

    def bounded(loader: SafeConstructor, node: yaml.ScalarNode) -> Any:
        if len(node.value) > MAX_NUMBER_CHARS:
            raise ConstructorError(None, None, f"a number of {len(node.value)} characters is too long "
                                   f"(at most {MAX_NUMBER_CHARS})", node.start_mark)
        return construct(loader, node)

    return bounded


for _tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
    _Loader.add_constructor(_tag, _bounded_number(_tag))


@dataclass
class _Open:
    node: yaml.Node
    anchor: str | None
    items: list[yaml.Node]
    size: int = 1  # values in this subtree after alias expansion, itself included


Duplicates = dict[int, list[tuple[yaml.Node, int]]]  # id(mapping node) -> [(repeated key, first line)]


def _compose(loader: _Loader, duplicates: Duplicates) -> yaml.Node | None:
    """The document's node graph, or None for an empty stream; one document only."""
    loader.get_event()  # StreamStart
    if loader.check_event(yaml.StreamEndEvent):
        return None
    document: Any = loader.get_event()
    root = _compose_node(loader, duplicates)
    loader.get_event()  # DocumentEnd
    if not loader.check_event(yaml.StreamEndEvent):
        extra: Any = loader.get_event()
        raise ComposerError("expected a single document in the stream", document.start_mark,
                            "but found another document", extra.start_mark)
    return root


def _compose_node(loader: _Loader, duplicates: Duplicates) -> yaml.Node:
    """Iterative composition (no recursion) that bounds the depth and the alias-expanded size."""
    anchors: dict[str, tuple[yaml.Node, int]] = {}  # anchor -> (node, expanded size; -1 while open)
    stack: list[_Open] = []
    total = 0  # values so far, each alias counted as the whole value it names
    while True:
        event: Any = loader.get_event()
        mark: Any = event.start_mark  # libyaml's and PyYAML's Mark types differ; both have .line
        anchor: str | None = getattr(event, "anchor", None)
        node: yaml.Node
        size = 1
        opens = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", mark)
            node, size = anchors[event.anchor]
            if size < 0:
                raise _LimitError(None, None, f"alias *{event.anchor} is used inside the value it names "
                                  "(a recursive alias)", mark)
            total += size
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            top = stack.pop()
            node, size, anchor = top.node, top.size, top.anchor
            node.end_mark = event.end_mark
            node.value = (list(zip(top.items[::2], top.items[1::2], strict=True))
                          if isinstance(node, yaml.MappingNode) else top.items)
            if isinstance(node, yaml.MappingNode):
                _find_duplicates(node, duplicates)
        elif isinstance(event, yaml.ScalarEvent) or opens:
            if anchor is not None and anchor in anchors:
                first = anchors[anchor][0].start_mark.line + 1
                raise ComposerError(None, None, f"anchor &{anchor} is defined twice (first on line {first})", mark)
            total += 1
            kind: Any = (yaml.ScalarNode if isinstance(event, yaml.ScalarEvent) else
                         yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode)
            tag = event.tag
            if tag is None or tag == "!":
                tag = loader.resolve(kind, getattr(event, "value", None), event.implicit)
            if opens:
                if len(stack) >= MAX_DEPTH:
                    raise _LimitError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
                node = kind(tag, [], mark, None, flow_style=event.flow_style)
                stack.append(_Open(node, anchor, []))
                size = -1  # open: an alias to it now would be recursive
            else:
                node = kind(tag, event.value, mark, event.end_mark, style=event.style)
        else:  # pragma: no cover - the parser emits nothing else inside a document
            raise ComposerError(None, None, f"unexpected {type(event).__name__}", mark)
        if anchor is not None and not isinstance(event, yaml.AliasEvent):
            anchors[anchor] = (node, size)
        if total > MAX_NODES:
            raise _LimitError(None, None, f"the document has more than {MAX_NODES:,} values "
                              "(each alias counted as all the values it names)", mark)
        if opens:
            continue
        if not stack:
            return node
        stack[-1].items.append(node)
        stack[-1].size += size


def _find_duplicates(node: yaml.MappingNode, duplicates: Duplicates) -> None:
    seen: dict[tuple[str, str], int] = {}
    repeated: list[tuple[yaml.Node, int]] = []
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
            continue  # keys brought in by `<<` may be overridden: that is what merging is for
        if (key.tag, key.value) in seen:
            repeated.append((key, seen[key.tag, key.value]))
        else:
            seen[key.tag, key.value] = key.start_mark.line + 1
    if repeated:
        duplicates[id(node)] = repeated


def _record_lines(node: yaml.Node, path: KeyPath, source: Source, duplicates: Duplicates,
                  reported: set[int]) -> None:
    """The line of every key path (aliases expanded: bounded by MAX_NODES) and each duplicate key."""
    if isinstance(node, yaml.MappingNode):
        for key_node, first in duplicates.get(id(node), ()):
            if id(key_node) in reported:  # an aliased mapping is walked once per use
                continue
            reported.add(id(key_node))
            line = key_node.start_mark.line + 1
            where = f"twice on line {line}" if first == line else f"first on line {first}, again on line {line}"
            source.problems.append(Problem(
                source.file, line, dotted((*path, key_node.value)),
                f"duplicate key {show(key_node.value)}: {where} (YAML would silently keep only the last)",
                "remove or rename one of them"))
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                source.lines[(*path, key_node.value)] = key_node.start_mark.line + 1
                _record_lines(value_node, (*path, key_node.value), source, duplicates, reported)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            source.lines[(*path, i)] = item.start_mark.line + 1
            _record_lines(item, (*path, i), source, duplicates, reported)
