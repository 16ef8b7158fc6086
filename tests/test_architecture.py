"""The package's folders are its architecture: each wing imports only the wings below it.

The import graph is read from the source with `ast` (nothing is imported), so a new upward import — or
an import deferred into a function body to dodge this test — fails here. docs/ARCHITECTURE.md draws the
same table.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ai_wallpaper"

# wing -> the wings it may import (besides itself). Top-level modules (cli, __main__) may import anything.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": {"core"},
    "catalog": {"core", "config"},
    "scene": {"core", "config", "catalog"},
    "render": {"core", "config", "catalog", "scene"},
    "desktop": {"core", "config"},
    "service": {"core", "config", "catalog", "scene", "render", "desktop"},
    "commands": {"core", "config", "catalog", "scene", "render", "desktop", "service"},
}
MAX_LINES = 300


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _wing(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else None


def _imported_wings(path: Path) -> set[tuple[str, int]]:
    """(wing, line) for every import of the package's own modules, anywhere in the file."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; spell the wing out"
            module = node.module or ""
            names = [f"{module}.{a.name}" for a in node.names] if module == "ai_wallpaper" else [module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ai_wallpaper" and len(parts) > 1 and parts[1] in ALLOWED:
                found.add((parts[1], node.lineno))
    return found


def test_every_module_lives_in_a_known_wing() -> None:
    top_level = {p.name for p in _modules() if _wing(p) is None}
    assert top_level == {"__init__.py", "__main__.py", "cli.py"}
    assert {_wing(p) for p in _modules()} - {None} == set(ALLOWED)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_only_downward(path: Path) -> None:
    wing = _wing(path)
    if wing is None:
        return  # the CLI entry points sit above every wing
    upward = sorted(f"line {line}: {wing} imports {other}" for other, line in _imported_wings(path)
                    if other != wing and other not in ALLOWED[wing])
    assert not upward, f"{path.relative_to(PACKAGE)}: " + "; ".join(upward)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines; split it by responsibility"


def test_no_import_guards_around_the_projects_own_modules() -> None:
    offenders = [f"{p.relative_to(PACKAGE)}:{n.lineno}" for p in _modules()
                 for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
                 if isinstance(n, ast.ExceptHandler) and isinstance(n.type, ast.Name)
                 and n.type.id in {"ModuleNotFoundError", "ImportError"}
                 and any(isinstance(s, ast.ImportFrom) and (s.module or "").startswith("ai_wallpaper")
                         for s in ast.walk(_try_of(p, n)))]
    assert not offenders


def _try_of(path: Path, handler: ast.ExceptHandler) -> ast.AST:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Try) and any(h.lineno == handler.lineno for h in node.handlers):
            return ast.Module(body=node.body, type_ignores=[])
    return ast.Module(body=[], type_ignores=[])


def test_tests_mirror_the_wings() -> None:
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert folders == set(ALLOWED), "tests/<wing>/ holds the tests of ai_wallpaper/<wing>/"
