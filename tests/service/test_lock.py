"""The daemon's single-instance lock: refuses a second holder, names it, dies with its process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ai_wallpaper.core.errors import LockedError
from ai_wallpaper.service.lock import DaemonLock, lock_holder


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
        from ai_wallpaper.service.lock import DaemonLock
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


def test_status_probes_never_make_a_starting_daemon_give_up(tmp_path: Path) -> None:
    """`status`/`next` probe the lock for an instant; a daemon starting meanwhile retries past them."""
    import threading

    path = tmp_path / "daemon.lock"
    stop = threading.Event()
    probes = 0

    def probe() -> None:
        nonlocal probes
        while not stop.is_set():
            lock_holder(path)
            probes += 1

    workers = [threading.Thread(target=probe) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        for _ in range(50):
            lock = DaemonLock(path)
            lock.acquire()  # raises LockedError (exit 7) if a probe could win the race
            lock.release()
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert probes > 100


def test_a_signal_sent_as_soon_as_the_pid_is_published_is_handled(tmp_path: Path) -> None:
    """`next` sends SIGUSR1 to the pid in the lock file; the daemon must already handle it by then."""
    import signal
    import time

    import yaml

    lock = tmp_path / "state" / "daemon.lock"
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({"schedule": {"interval_seconds": 3600, "catch_up": False}}))
    env = {**os.environ, "AI_WALLPAPER_STATE_DIR": str(tmp_path / "state"),
           "AI_WALLPAPER_CACHE_DIR": str(tmp_path / "cache"), "AI_WALLPAPER_DATA_DIR": str(tmp_path / "data"),
           "AI_WALLPAPER_CONFIG_DIR": str(tmp_path / "config")}
    job = json.dumps([sys.executable, "-c", "pass"])
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parents[1] / "job_swap.py"), job, "",
                             "daemon", "--config", str(config)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        pid = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                text = lock.read_text().strip()
            except OSError:
                text = ""
            if text.isdigit():
                pid = int(text)
                os.kill(pid, signal.SIGUSR1)  # the earliest moment a `next` could
                break
        assert pid == proc.pid
        time.sleep(1.0)
        assert proc.poll() is None, "SIGUSR1 killed the daemon: its handler was installed too late"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
