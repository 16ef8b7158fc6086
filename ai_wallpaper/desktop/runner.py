"""The one place desktop code starts processes. Tests swap it for a recorder to assert exact argv."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ai_wallpaper.core.errors import DesktopError


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class Runner(Protocol):
    def __call__(self, argv: Sequence[str], *, check: bool = True,
                 env: Mapping[str, str] | None = None) -> CommandResult: ...


def _describe(argv: Sequence[str]) -> str:
    return " ".join(argv) if len(" ".join(argv)) < 300 else " ".join(argv)[:300] + " …"


def run_command(argv: Sequence[str], *, check: bool = True, env: Mapping[str, str] | None = None,
                timeout_s: float = 30.0) -> CommandResult:
    """Run `argv`; with `check`, a non-zero exit (or a missing binary) is a DesktopError with its output."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                              env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
                              check=False)
    except FileNotFoundError:
        if not check:
            return CommandResult(tuple(argv), 127, "", f"{argv[0]}: not found")
        raise DesktopError(f"wallpaper setter command not found: {argv[0]}",
                           hint="install it, or pick another desktop.setter in settings.yaml") from None
    except subprocess.TimeoutExpired as exc:
        raise DesktopError(f"wallpaper setter timed out after {timeout_s:.0f} s: {_describe(argv)}") from exc
    result = CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip() or "(no output)")[-2000:]
        raise DesktopError(f"wallpaper setter failed (exit {proc.returncode}): {_describe(argv)}\n{output}",
                           hint="see the command's output above; desktop.setter in settings.yaml "
                                "picks another")
    return result
