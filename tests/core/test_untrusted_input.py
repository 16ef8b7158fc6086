"""Reading what may be hostile: never a hang on a FIFO, never a link followed, never a huge read, and too
deep a JSON nesting is a JSONDecodeError like any other malformed text (json.loads raises RecursionError)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ai_wallpaper.core.untrusted_input import loads_json, read_small_file, read_small_json


def test_deep_nesting_is_a_decode_error_not_a_recursion_error() -> None:
    with pytest.raises(RecursionError):
        json.loads("[" * 50_000)  # what every caller used to face
    for text in ("[" * 50_000, b'{"a":' * 50_000):
        with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
            loads_json(text)
    assert loads_json(b'{"a": [1, 2]}') == {"a": [1, 2]}


def test_small_files_refuse_fifos_links_and_huge_ones(tmp_path: Path) -> None:
    assert read_small_file(tmp_path / "absent", 10) is None
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        read_small_file(fifo, 10)
    target = tmp_path / "target.json"
    target.write_text('{"ok": true}')
    (tmp_path / "link.json").symlink_to(target)
    with pytest.raises(OSError):
        read_small_file(tmp_path / "link.json", 100)
    with pytest.raises(ValueError, match="larger than 5 bytes"):
        read_small_file(target, 5)
    assert read_small_json(target, 100) == {"ok": True}
    (tmp_path / "deep.json").write_text("[" * 4000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_small_json(tmp_path / "deep.json", 100_000)
