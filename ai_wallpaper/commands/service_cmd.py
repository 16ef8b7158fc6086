"""`ai-wallpaper install-service`: writes the user units (service/systemd_units.py) and says what to run next."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Mapping

from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.core import atomic
from ai_wallpaper.core.errors import ExitCode
from ai_wallpaper.service.systemd_units import (
    ONESHOT,
    SERVICE,
    TIMER,
    check_calendar,
    on_calendar,
    quote_exec,
    render_units,
    user_unit_dir,
)

# A unit file is a plain text file (and `systemctl show` prints its Environment=): a token stays out.
_SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY", re.IGNORECASE)


def user_environment(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(the AI_WALLPAPER_* variables the unit carries, the names left out as secrets)."""
    ours = {k: v for k, v in env.items() if k.startswith("AI_WALLPAPER_")}
    secret = sorted(k for k in ours if _SECRET.search(k.removeprefix("AI_WALLPAPER_")))
    return {k: v for k, v in ours.items() if k not in secret}, secret


def cmd_install_service(args: argparse.Namespace, ctx: AppContext) -> int:
    argv = [sys.executable, "-m", "ai_wallpaper"]
    config = ctx.config_file.resolve() if ctx.config_file else None
    carried, secret = user_environment(os.environ)
    units = render_units(quote_exec(argv), ctx.settings.schedule, config_file=config, environment=carried)
    wanted = [ONESHOT, TIMER] if args.timer else [SERVICE]
    if args.timer:
        on_calendar(ctx.settings.schedule)  # raises the precise reason when there is no systemd form
        check_calendar(units[TIMER])
    for name in secret:
        print(f"note: {name} is not written into the unit (a secret); use invokeai.token_file instead",
              file=sys.stderr)
    if args.print_only:
        for name in wanted:
            print(f"# --- {name}\n{units[name]}")
        return int(ExitCode.OK)
    unit_dir = user_unit_dir()
    for name in wanted:
        atomic.write_text(unit_dir / name, units[name])
        print(f"wrote {unit_dir / name}")
    enable = TIMER if args.timer else SERVICE
    other = SERVICE if args.timer else TIMER
    print("\nnow run:")
    print("  systemctl --user daemon-reload")
    print(f"  systemctl --user disable --now {other} 2>/dev/null  # only one variant at a time")
    print(f"  systemctl --user enable --now {enable}")
    print(f"  journalctl --user -u {'ai-wallpaper-oneshot' if args.timer else 'ai-wallpaper'} -f   # logs")
    print("\nsway / Hyprland (no session manager imports the display variables), once per login,")
    print("e.g. in the sway config (exec) or hyprland.conf (exec-once):")
    print("  systemctl --user import-environment WAYLAND_DISPLAY DISPLAY XDG_CURRENT_DESKTOP "
          "SWAYSOCK HYPRLAND_INSTANCE_SIGNATURE")
    print("  dbus-update-activation-environment --systemd WAYLAND_DISPLAY XDG_CURRENT_DESKTOP")
    subcommand = ["generate", "--trigger", "schedule"] if args.timer else ["daemon"]
    print(f"\nthe unit runs: {shlex.join([*argv, *subcommand, *(['--config', str(config)] if config else [])])}")
    return int(ExitCode.OK)
