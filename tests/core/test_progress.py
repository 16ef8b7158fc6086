"""Stage progress: a tqdm bar on a real terminal (a pty), sparse log lines elsewhere, and the per-run
progress file `status` and the daemon read (throttled, removed when the process ends)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

from ai_wallpaper.core import progress
from ai_wallpaper.core.progress import StageProgress, describe, read_run_progress


@pytest.fixture(autouse=True)
def _no_publisher() -> None:
    progress._publisher.clear()


def _on_a_terminal(script: str, size: int = 100, timeout: float = 60) -> str:
    """Run `script` with stderr on a real pseudo-terminal; everything it drew there."""
    master, slave = pty.openpty()
    if size:
        termios.tcsetwinsize(slave, (30, size))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the terminal's last writer is gone
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    proc.wait(timeout=timeout)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_a_terminal_gets_a_bar_per_stage_with_steps_elapsed_and_eta() -> None:
    script = textwrap.dedent("""
        import time
        from ai_wallpaper.core import log
        from ai_wallpaper.core.progress import StageProgress, terminal_stream
        log.configure("info", "auto")
        stream = terminal_stream()
        assert stream is not None
        bar = StageProgress("enhanced", 4, 5, stream)
        for step in range(1, 13):
            bar(step, 12)
            if step == 6:
                log.get("test").warning("halfway there", step=step)
            time.sleep(0.02)
        bar.finish()
        done = StageProgress("final", 5, 5, stream)
        done(1, 1)
        done.finish()
    """)
    screen = _on_a_terminal(script)
    assert re.search(r"\[4/5\] enhanced: 100%\|[^|]*\| 12/12 \[\d\d:\d\d<\d\d:\d\d", screen), screen
    assert re.search(r"\[5/5\] final: 100%\|[^|]*\| 1/1 \[", screen), screen
    # the log line printed mid-stage is on its own line, readable (console renderer, no JSON)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", screen)  # colours off
    line = next(part for part in re.split(r"[\r\n]", plain) if "halfway there" in part)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[warning\s*\] halfway there\s+\[test\] step=6\s*", line), line


def test_without_a_terminal_progress_is_a_few_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from ai_wallpaper.core import log

    log.configure("info", "json", stream=sys.stdout)
    bar = StageProgress("upscaled", 3, 5, None)
    for step in range(1, 101):
        bar(step, 100)
    bar.finish()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    steps = [e["step"] for e in lines if e["event"] == "progress"]
    assert steps[0] == 1 and steps[-1] == 100 and 4 <= len(steps) <= 6


def test_the_run_publishes_its_stage_at_most_once_a_second(tmp_path: Path) -> None:
    file = tmp_path / "progress" / "run-1.json"
    progress.publish_to(file, "run-1")
    bar = StageProgress("enhanced", 4, 5, None)
    first = json.loads(file.read_text())  # a new stage is published at once
    assert (first["run_id"], first["stage"], first["step"], first["percent"]) == ("run-1", "enhanced", 0, 0)
    assert (first["stage_index"], first["stage_count"], first["pid"]) == (4, 5, os.getpid())
    bar(3, 12)
    assert json.loads(file.read_text())["step"] == 0  # within the second: not written
    time.sleep(progress.PUBLISH_EVERY_S + 0.05)
    bar(5, 12)
    now = read_run_progress(file)
    assert now is not None and (now["step"], now["total"], now["percent"]) == (5, 12, 41)
    assert describe(now) == "enhanced 41% (step 5/12)"
    bar(12, 12)  # the last step always
    assert json.loads(file.read_text())["percent"] == 100
    StageProgress("final", 5, 5, None)
    assert json.loads(file.read_text())["stage"] == "final"


def test_the_file_goes_with_its_process_and_a_dead_one_is_ignored(tmp_path: Path) -> None:
    file = tmp_path / "progress" / "run-2.json"
    script = (f"from pathlib import Path\nfrom ai_wallpaper.core import progress\n"
              f"progress.publish_to(Path({str(file)!r}), 'run-2')\n"
              f"progress.StageProgress('base', 1, 5, None)(1, 4)\n"
              f"assert Path({str(file)!r}).is_file()\n")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert not file.exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({"run_id": "run-2", "pid": dead.pid, "stage": "base", "percent": 50}))
    assert read_run_progress(file) is None  # killed (-9) before it could remove it
    file.write_text("{half")
    assert read_run_progress(file) is None


def test_a_fifo_or_a_huge_file_in_place_of_the_progress_file_is_no_progress(tmp_path: Path) -> None:
    """The daemon reads this file every second for systemd's STATUS=: a FIFO must not block it."""
    fifo = tmp_path / "run-3.json"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    started = time.monotonic()
    assert read_run_progress(fifo) is None and time.monotonic() - started < 5
    huge = tmp_path / "run-4.json"
    huge.write_text(json.dumps({"run_id": "run-4", "pid": os.getpid(), "stage": "x" * 100_000}))
    assert read_run_progress(huge) is None
    nested = tmp_path / "run-5.json"
    nested.write_text("[" * 4000)
    assert read_run_progress(nested) is None
