"""`ai-wallpaper` command line. The one place that catches WallpaperError and picks the exit code."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from pathlib import Path

from ai_wallpaper import __version__
from ai_wallpaper.commands import help_text
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.core import atomic
from ai_wallpaper.core import log as logsetup
from ai_wallpaper.core.errors import ExitCode, WallpaperError
from ai_wallpaper.core.paths import Paths

# Each module defines `register(subparsers, common)`; a parser's `func(args, ctx) -> int` runs it.
COMMAND_MODULES = (
    "generate",
    "plan_cmd",
    "config_cmd",
    "themes_cmd",
    "loras_cmd",
    "doctor_cmd",
    "daemon_cmd",
    "pause_cmd",
)


def _common_options(default: object) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, argument_default=default)
    common.add_argument("--config", type=Path, metavar="FILE",
                        help="settings file (default: $AI_WALLPAPER_CONFIG or <config dir>/settings.yaml)")
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override logging.level")
    common.add_argument("--log-format", choices=["auto", "console", "json"], help="override logging.format")
    return common


def build_parser() -> argparse.ArgumentParser:
    # The global options are accepted before and after the subcommand. The subcommand's copy
    # must not write defaults, or it would overwrite a value given before the subcommand.
    parser = argparse.ArgumentParser(prog="ai-wallpaper", description="Paint a new desktop wallpaper with SDXL.",
                                     parents=[_common_options(None)])
    common = _common_options(argparse.SUPPRESS)
    parser.add_argument("--version", action="version", version=f"ai-wallpaper {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"ai_wallpaper.commands.{name}")
        module.register(sub, common)
    help_text.document(parser)  # every subcommand's examples and exit codes
    return parser


def main(argv: list[str] | None = None) -> int:
    atomic.set_process_umask()  # private by default: every file and folder we create is the user's alone
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = AppContext(paths=Paths.from_env(), config_file=args.config)
    try:
        # Logging falls back to defaults if the settings themselves are broken (we still report).
        try:
            log_settings = ctx.settings.logging
            level, fmt = log_settings.level, log_settings.format
        except WallpaperError:
            level, fmt = "info", "auto"
        logsetup.configure(args.log_level or level, args.log_format or fmt)
        code: int = args.func(args, ctx)
        return code
    except WallpaperError as exc:
        _error(f"error: {exc}")
        return int(exc.exit_code)
    except KeyboardInterrupt:
        _error("interrupted", priority=logsetup.WARNING)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        _silence_stdout()
        _error("error: standard output was closed before everything was printed "
               "(whatever ran has been recorded: see `ai-wallpaper history`)")
        return int(ExitCode.FAILURE)
    except Exception as exc:  # a bug: one line for the user, the traceback in the debug log
        logsetup.get(__name__).debug("unexpected error", exc_info=exc)
        _error(f"error: unexpected {type(exc).__name__}: {exc}\n"
               "  hint: this is a bug in ai-wallpaper; rerun with --log-level debug for the details and report it")
        return int(ExitCode.FAILURE)


def _error(text: str, priority: int = logsetup.ERROR) -> None:
    """The one message for the user; in the journal at error priority (`journalctl -p err` finds it)."""
    if logsetup.journal_stream(sys.stderr):
        text = logsetup.with_priority(text, priority)
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail a second time."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
