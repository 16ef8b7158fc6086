"""Is the process that wrote a history row still at work? (for rows left "running")

A row names its process by pid. A pid alone can lie: after a power-off it names some other process
(or none), and within one boot the kernel reuses pids eventually. So a row from before the last boot is
never alive, and "at work" (used to keep one generation at a time) also asks that the process be no
younger than the row.
"""

from __future__ import annotations

import os

import psutil

# psutil's start times are exact to a jiffy, but the boot time they are counted from only to the second.
CLOCK_SLACK_S = 2.0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def row_process_alive(pid: int | None, started_at: float) -> bool:
    """The row's pid exists (no zombie) and the row is from this boot."""
    if pid is None or started_at < psutil.boot_time() - CLOCK_SLACK_S:
        return False
    return pid_alive(pid)


def row_process_at_work(pid: int | None, started_at: float) -> bool:
    """row_process_alive, and the process started no later than the row: not a newer process that got
    the pid. (A resumed run's row is older than its process: it does not count, which only means a
    daemon may start a run beside a manual `generate --resume`.)"""
    if pid is None or not row_process_alive(pid, started_at):
        return False
    try:
        born = psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return False
    return bool(born <= started_at + CLOCK_SLACK_S)
