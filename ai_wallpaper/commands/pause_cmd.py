"""`ai-wallpaper pause [DURATION]` and `resume`: hold scheduled runs for a while (service/pause.py)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.core.errors import ExitCode
from ai_wallpaper.service.pause import parse_duration, pause, resume


def _duration_arg(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:  # argparse names the argument: "argument DURATION: ..."
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("pause", parents=[common], help="skip scheduled runs for a while",
                       description="Skip scheduled and catch-up runs (each is recorded as skipped) for "
                                   "DURATION, or until `ai-wallpaper resume`. `generate` and `next` still run.")
    p.add_argument("duration", nargs="?", type=_duration_arg, metavar="DURATION",
                   help="how long: 30m, 2h, 1d, 1h30m (at most 365d); default: until `resume`")
    p.set_defaults(func=cmd_pause)
    p = sub.add_parser("resume", parents=[common], help="end a pause",
                       description="Let scheduled runs go ahead again.")
    p.set_defaults(func=cmd_resume)


def cmd_pause(args: argparse.Namespace, ctx: AppContext) -> int:
    state = pause(ctx.paths.pause_file, args.duration)
    print(f"{state.describe()}: scheduled runs are skipped; `generate` and `next` still run")
    return int(ExitCode.OK)


def cmd_resume(args: argparse.Namespace, ctx: AppContext) -> int:
    state = resume(ctx.paths.pause_file)
    print("not paused: scheduled runs go ahead" if state is None
          else f"resumed ({state.describe()}): scheduled runs go ahead")
    return int(ExitCode.OK)
