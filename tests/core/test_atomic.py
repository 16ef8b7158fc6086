"""atomic.replace_dir: a folder appears complete or not at all, once, even with a concurrent twin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ai_wallpaper.core.atomic import replace_dir


def _complete(d: Path) -> bool:
    return (d / "done.txt").is_file()


def _fill(text: str) -> Callable[[Path], None]:
    def fill(d: Path) -> None:
        (d / "sub").mkdir()
        (d / "sub" / "data.bin").write_bytes(text.encode())
        (d / "done.txt").write_text(text)
    return fill


def test_fills_once_and_leaves_no_temp_folder(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "model"
    calls: list[Path] = []

    def fill(d: Path) -> None:
        calls.append(d)
        _fill("one")(d)

    assert replace_dir(target, fill, ready=_complete) == target
    assert (target / "done.txt").read_text() == "one" and (target / "sub" / "data.bin").read_bytes() == b"one"
    assert replace_dir(target, fill, ready=_complete) == target
    assert len(calls) == 1 and calls[0].parent == target.parent and calls[0] != target
    assert [p.name for p in target.parent.iterdir()] == ["model"]


def test_a_failed_fill_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "model"

    def fill(d: Path) -> None:
        (d / "half.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        replace_dir(target, fill)
    assert list(tmp_path.iterdir()) == []


def test_a_twin_that_finished_first_wins(tmp_path: Path) -> None:
    target = tmp_path / "model"

    def slow_fill(d: Path) -> None:
        _fill("slow")(d)
        replace_dir(target, _fill("fast"), ready=_complete)  # the other process

    assert replace_dir(target, slow_fill, ready=_complete) == target
    assert (target / "done.txt").read_text() == "fast"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_an_incomplete_folder_it_did_not_make_is_reported_not_touched(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "theirs.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="incomplete"):
        replace_dir(target, _fill("ours"), ready=_complete)
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
