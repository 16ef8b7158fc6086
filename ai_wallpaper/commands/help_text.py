"""What every subcommand's `--help` ends with: examples and the exit-code table.

`document(parser)` runs once the commands have registered (cli.build_parser): it walks every
subcommand and sub-subcommand, gives one without a description its one-line help as description, and
appends its examples (EXAMPLES, one table for all commands) and the exit codes (EXIT_CODES, one line
per `ExitCode` member; a test fails when a member has no line here).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Iterator

from ai_wallpaper.core.errors import ExitCode

EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "failed, or a check found problems (validate, doctor)",
    ExitCode.USAGE: "bad command line (unknown option, missing --resume folder, unknown theme)",
    ExitCode.CONFIG: "config problem in settings.yaml, themes.yaml, loras.yaml or a run.json",
    ExitCode.MODEL: "a model is missing, unreadable or unsafe",
    ExitCode.RUN: "the generation failed (out of memory, timed out, render server error)",
    ExitCode.DESKTOP: "the image was made but setting the wallpaper failed",
    ExitCode.LOCKED: "another daemon already runs (see `ai-wallpaper status`)",
    ExitCode.INTERRUPTED: "interrupted or cancelled (Ctrl-C, SIGTERM)",
}

# Command path (as typed after `ai-wallpaper`) -> example command lines; each must parse.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "generate": ("ai-wallpaper generate",
                 "ai-wallpaper generate --theme misty_pine_valley --seed 42 --no-wallpaper",
                 "ai-wallpaper generate --dry-run --json",
                 "ai-wallpaper generate --resume ~/.local/share/ai-wallpaper/runs/RUN_ID"),
    "plan": ("ai-wallpaper plan", "ai-wallpaper plan --seed 7 --no-weather --json"),
    "config": ("ai-wallpaper config validate", "ai-wallpaper config sample > settings.yaml"),
    "config validate": ("ai-wallpaper config validate", "ai-wallpaper config validate --config ./settings.yaml"),
    "config sample": ("ai-wallpaper config sample > ~/.config/ai-wallpaper/settings.yaml",),
    "config paths": ("ai-wallpaper config paths",),
    "themes": ("ai-wallpaper themes list", "ai-wallpaper themes show misty_pine_valley"),
    "themes list": ("ai-wallpaper themes list", "ai-wallpaper themes list --category landscapes --json"),
    "themes show": ("ai-wallpaper themes show misty_pine_valley",
                    "ai-wallpaper themes show misty_pine_valley --seed 3"),
    "loras": ("ai-wallpaper loras list", "ai-wallpaper loras validate"),
    "loras list": ("ai-wallpaper loras list", "ai-wallpaper loras list --json"),
    "loras validate": ("ai-wallpaper loras validate",),
    "loras check": ("ai-wallpaper loras check ~/Downloads/my_style.safetensors",),
    "doctor": ("ai-wallpaper doctor", "ai-wallpaper doctor --backend invokeai --json"),
    "daemon": ("ai-wallpaper daemon", "ai-wallpaper daemon --log-format console --log-level debug"),
    "status": ("ai-wallpaper status", "ai-wallpaper status --json"),
    "history": ("ai-wallpaper history", "ai-wallpaper history -n 5 --json", "ai-wallpaper history show",
                "ai-wallpaper history show RUN_ID --json", "ai-wallpaper history gallery --output runs.html"),
    "previous": ("ai-wallpaper previous",),
    "forward": ("ai-wallpaper forward",),
    "favorite": ("ai-wallpaper favorite", "ai-wallpaper favorite RUN_ID --remove"),
    "next": ("ai-wallpaper next",),
    "install-service": ("ai-wallpaper install-service", "ai-wallpaper install-service --timer --print"),
    "pause": ("ai-wallpaper pause 2h", "ai-wallpaper pause 1h30m", "ai-wallpaper pause"),
    "resume": ("ai-wallpaper resume",),
}


class HelpFormatter(argparse.HelpFormatter):
    """Prose paragraphs are wrapped to the terminal; a block under a "...:" line (examples, exit codes)
    is printed as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if lines and lines[0].endswith(":") and len(lines) > 1:
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)


def exit_code_table() -> str:
    width = max(len(str(int(code))) for code in ExitCode)
    return "exit codes:\n" + "\n".join(f"  {int(code):>{width}}  {EXIT_CODES[code]}" for code in ExitCode)


def subcommands(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) for every subcommand below `parser`, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                if not child.description and helps.get(name):
                    child.description = str(helps[name])[0].upper() + str(helps[name])[1:] + "."
                full = f"{path} {name}".strip()
                yield full, child
                yield from subcommands(child, full)


def document(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand its description, examples and the exit-code table."""
    codes = exit_code_table()
    for path, child in subcommands(parser):
        examples = EXAMPLES.get(path, ())
        block = "examples:\n" + "\n".join(f"  {line}" for line in examples) + "\n\n" if examples else ""
        child.epilog = block + codes
        child.formatter_class = HelpFormatter
    parser.epilog = codes
    parser.formatter_class = HelpFormatter
