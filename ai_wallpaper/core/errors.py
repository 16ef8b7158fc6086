"""The one domain exception and the named exit codes.

Everything that is the user's to fix (bad config, missing model, bad sizes) is raised as a
`WallpaperError` subclass and caught once, in `cli.main`, which prints it and exits with its code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # generic failure, also "validation found problems"
    USAGE = 2  # argparse's own code for bad command lines
    CONFIG = 3
    MODEL = 4
    RUN = 5
    DESKTOP = 6
    LOCKED = 7
    INTERRUPTED = 130


class WallpaperError(Exception):
    """A problem the user can act on. `hint` says how."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(WallpaperError):
    """A command-line mistake found after parsing (a missing --resume folder, an unknown theme)."""

    exit_code = ExitCode.USAGE


class ConfigError(WallpaperError):
    """One or more config problems; `problems` lists every one found."""

    exit_code = ExitCode.CONFIG

    def __init__(self, problems: list[str] | str, *, hint: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        head = f"{len(self.problems)} config problem(s):" if len(self.problems) > 1 else "config problem:"
        super().__init__(head + "\n" + "\n".join(f"  - {p}" for p in self.problems), hint=hint)


class ModelError(WallpaperError):
    exit_code = ExitCode.MODEL


class RunError(WallpaperError):
    exit_code = ExitCode.RUN


class DesktopError(WallpaperError):
    exit_code = ExitCode.DESKTOP


class LockedError(WallpaperError):
    exit_code = ExitCode.LOCKED


class Cancelled(WallpaperError):
    """Raised from a progress callback when a cancel was requested (SIGTERM, Ctrl-C)."""

    exit_code = ExitCode.INTERRUPTED
