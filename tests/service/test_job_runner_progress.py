"""A child killed mid-run cannot remove its progress file: the runner does, so `status` never shows a
dead run's stage."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.service.job_runner import JobRunner


def test_a_killed_child_s_progress_file_is_removed(tmp_path: Path, paths: Paths) -> None:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, signal, sys
        from pathlib import Path
        target = Path(sys.argv[1])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({{"stage": "enhanced", "percent": 41, "pid": os.getpid()}}))
        Path({str(tmp_path / "written")!r}).write_text("yes")
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no cleanup: as a crash or the OOM killer would
    """))
    runner = JobRunner(History(paths.history_db), [sys.executable, str(script), str(paths.run_progress("{run_id}"))],
                       timeout_s=60, progress_file=paths.run_progress)
    outcome = runner.run("next", "20261207-000000-abcdef")
    assert (tmp_path / "written").read_text() == "yes"  # the child did publish its progress
    assert outcome is not None and outcome.status == "failed" and outcome.returncode == -9
    assert not paths.run_progress("20261207-000000-abcdef").exists()
