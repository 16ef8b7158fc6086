"""The daemon's single-instance lock: refuses a second holder, names it, dies with its process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ai_wallpaper.errors import LockedError
from ai_wallpaper.lock import DaemonLock, lock_holder


def test_second_holder_is_refused_with_the_pid(tmp_path: Path) -> None:
    path = tmp_path / "state" / "daemon.lock"
    assert lock_holder(path) is None
    with DaemonLock(path) as first:
        assert first.held and lock_holder(path) == os.getpid()
        with pytest.raises(LockedError, match=f"pid {os.getpid()}") as err:
            DaemonLock(path).acquire()
        assert err.value.exit_code == 7
    assert lock_holder(path) is None
    again = DaemonLock(path)
    again.acquire()
    again.release()
    again.release()  # idempotent


def test_lock_dies_with_a_killed_holder_and_is_not_inherited(tmp_path: Path) -> None:
    path = tmp_path / "daemon.lock"
    script = textwrap.dedent(f"""
        import subprocess, sys, time
        from pathlib import Path
        from ai_wallpaper.lock import DaemonLock
        DaemonLock(Path({str(path)!r})).acquire()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    grandchild = int(holder.stdout.readline())
    try:
        assert lock_holder(path) == holder.pid
        holder.kill()
        holder.wait()
        # the holder's child is still alive but did not inherit the lock descriptor
        os.kill(grandchild, 0)
        assert lock_holder(path) is None
        with DaemonLock(path):
            assert lock_holder(path) == os.getpid()
    finally:
        os.kill(grandchild, 9)
