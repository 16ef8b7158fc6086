"""Reading what may not be what we expect: the small state files we write (the pause, a wallpaper set),
where anyone with the user's rights may have put something else (a link, a FIFO that would block the
reader, a huge file), and the JSON other programs print (desktop tools). JSON nested deep enough to
exhaust the parser's recursion is one more ValueError. Each of these is an OSError or ValueError for
the caller to report, never a hang or a crash."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any


def read_small_file(path: Path, max_bytes: int) -> bytes | None:
    """The file's bytes; None if there is none. OSError/ValueError for anything that is not a small
    regular file (a symlink, a FIFO that would block, a device, a file over `max_bytes`)."""
    try:
        # No O_NOFOLLOW/O_NONBLOCK on Windows (no FIFOs there; a link is then followed).
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = os.read(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes")
    return data


def read_small_json(path: Path, max_bytes: int) -> Any:
    """The file's JSON value; None if there is no file. OSError/ValueError as read_small_file, and
    ValueError for text that is not UTF-8 JSON (too deep a nesting included)."""
    data = read_small_file(path, max_bytes)
    return None if data is None else loads_json(data.decode("utf-8"))


def loads_json(text: str | bytes, **kwargs: Any) -> Any:
    """json.loads for text from a file or another program: too deep a nesting is a JSONDecodeError (a
    ValueError) like every other malformed text, where json.loads raises RecursionError."""
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        doc = text if isinstance(text, str) else text[:200].decode("utf-8", errors="replace")
        raise json.JSONDecodeError("JSON nested too deeply", doc, 0) from None
