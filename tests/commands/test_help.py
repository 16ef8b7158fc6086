"""Every subcommand's --help has a description, examples that the real parser accepts, and the exit-code
table, which names every ExitCode."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from ai_wallpaper.cli import build_parser
from ai_wallpaper.commands.help_text import EXAMPLES, EXIT_CODES, subcommands
from ai_wallpaper.core.errors import ExitCode

SHELL = {">", ">>", "|", "&&", ";"}


def _argv(example: str) -> list[str]:
    words = shlex.split(example)
    cut = next((i for i, w in enumerate(words) if w in SHELL), len(words))
    assert words[0] == "ai-wallpaper"
    return words[1:cut]


def test_every_exit_code_is_explained_once() -> None:
    assert set(EXIT_CODES) == set(ExitCode) and all(EXIT_CODES.values())


def test_every_subcommand_has_description_examples_and_exit_codes() -> None:
    parser = build_parser()
    found = dict(subcommands(parser))
    assert {"generate", "history", "config validate", "loras check", "themes show", "install-service"} <= set(found)
    assert set(EXAMPLES) <= set(found), "examples for a command that does not exist"
    for path, sub in found.items():
        assert sub.description and sub.description.strip(), f"{path}: no description"
        text = sub.format_help()
        assert "\nexamples:\n  ai-wallpaper " in text, f"{path}: no examples"
        assert "\nexit codes:\n" in text, path
        for code in ExitCode:
            assert f"  {int(code)}  {EXIT_CODES[code]}" in text, f"{path}: exit code {int(code)} missing"
        assert EXAMPLES.get(path), f"{path}: add its examples to help_text.EXAMPLES"
        for example in EXAMPLES[path]:
            argv = _argv(example)
            args = build_parser().parse_args(argv)  # SystemExit (exit 2) if it does not parse
            assert argv[: len(path.split())] == path.split(), f"{path}: example {example!r} runs another command"
            assert callable(args.func)


def test_help_prints_wrapped_description_and_raw_tables() -> None:
    out = subprocess.run([sys.executable, "-m", "ai_wallpaper", "doctor", "--help"], capture_output=True,
                         text=True, check=True, env={"COLUMNS": "60", "PATH": ""}).stdout
    description = out.split("\n\n")[1]
    assert description.startswith("Check the render backend") and all(len(line) <= 60 for line in
                                                                        description.splitlines())
    assert "  130  interrupted or cancelled (Ctrl-C, SIGTERM)" in out
    assert "examples:\n  ai-wallpaper doctor\n  ai-wallpaper doctor --backend invokeai --json\n" in out


@pytest.mark.parametrize("bad", ["ai-wallpaper history show --no-such-flag"])
def test_the_example_check_can_fail(bad: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(_argv(bad))
