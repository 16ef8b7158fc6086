"""Desktop notifications (desktop.notify, off by default): a new wallpaper is set, or a run failed.

Through `notify-send` (libnotify, the freedesktop notification spec), run as an argv list with no
shell. Notification servers render the body as markup, so the text (a prompt, an error: file- and
user-controlled) is escaped first, and no link can be injected. A missing `notify-send`, a missing
session bus or a slow server never fails or delays a run beyond the timeout: it is logged and dropped.
"""

from __future__ import annotations

import html
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ai_wallpaper.config.settings import DesktopSettings
from ai_wallpaper.core import log

logger = log.get(__name__)
TIMEOUT_S = 5.0
Urgency = Literal["low", "normal", "critical"]


def notify(settings: DesktopSettings, summary: str, body: str, *, urgency: Urgency = "normal",
           icon: Path | None = None, runner: Callable[..., Any] = subprocess.run) -> bool:
    """Show one notification if desktop.notify is on; True when notify-send accepted it."""
    if not settings.notify:
        return False
    exe = shutil.which("notify-send")
    if exe is None:
        logger.warning("notification skipped: notify-send not found (Debian/Ubuntu: libnotify-bin)")
        return False
    argv = [exe, "--app-name=ai-wallpaper", f"--urgency={urgency}"]
    if icon is not None:
        argv.append(f"--icon={icon}")
    argv += ["--", summary[:120], html.escape(body[:500], quote=False)]
    try:
        runner(argv, check=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, capture_output=True)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.warning("notification not shown", error=f"{type(exc).__name__}: {exc}")
        return False
    return True
