"""`ai-wallpaper next` without a daemon runs the generation child itself and passes its output through:
the child's own human message (its `error:` block) reaches the user exactly once, and a reason only
`next` knows (a killed child) is said once by `next`. Real processes: the real CLI, a swapped child
(tests/job_swap.py) and, for the last case, the real `generate`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from tests.service.test_daemon import FAKE_JOB, JOB_SWAP


def run_next(tmp_path: Path, behaviour: str | None, settings: dict[str, object] | None = None) -> tuple[int, str]:
    control = tmp_path / "control"
    control.mkdir(exist_ok=True)
    (control / "queue").write_text(behaviour or "")
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump(settings or {}))
    job = ""
    if behaviour is not None:
        script = tmp_path / "fake_job.py"
        script.write_text(FAKE_JOB)
        job = json.dumps([sys.executable, str(script), "--run-id", "{run_id}", "--trigger", "{trigger}"])
    proc = subprocess.run([sys.executable, str(JOB_SWAP), job, "", "next", "--config", str(config)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=180,
                          env={**os.environ, "FAKE_JOB_CONTROL": str(control)})
    return proc.returncode, proc.stdout


def human(out: str) -> str:
    """The output without log lines (JSON here: not a terminal)."""
    return "\n".join(line for line in out.splitlines() if not line.startswith("{"))


@pytest.mark.parametrize(("behaviour", "once", "in_logs_too"), [
    ("log-then-error", ["something human", "hint: do the human thing"], False),  # the child's block, no row
    ("fail", ["boom"], False),  # the child recorded its error and printed it
    ("die", ["generation process was killed by signal SIGKILL"], True),  # only `next` can say it
])
def test_the_failure_message_is_shown_once(tmp_path: Path, paths: Paths, behaviour: str, once: list[str],
                                           in_logs_too: bool) -> None:
    rc, out = run_next(tmp_path, behaviour)
    assert rc == 5, out
    [run] = History(paths.history_db).list_runs(5)
    assert run.status == "failed" and f"run {run.run_id}: failed" in out
    for text in once:
        assert human(out).count(text) == 1, out
        # what the child printed is not repeated in the run's log line either; `next`'s own reason is
        assert out.count(text) == 1 + in_logs_too, out


def test_success_is_said_once(tmp_path: Path, paths: Paths) -> None:
    rc, out = run_next(tmp_path, "ok")
    [run] = History(paths.history_db).list_runs(5)
    assert rc == 0 and human(out).strip() == f"run {run.run_id}: success", out


def test_the_real_generate_s_error_is_shown_once(tmp_path: Path, paths: Paths) -> None:
    missing = tmp_path / "no-such-model.safetensors"
    rc, out = run_next(tmp_path, None, {"models": {"base": str(missing)}, "weather": {"enabled": False}})
    [run] = History(paths.history_db).list_runs(5)
    assert rc == 5 and run.status == "failed" and run.error, out
    assert str(missing) in run.error
    for line in run.error.splitlines():  # "2 models cannot be used:", then one line per model
        assert out.count(line.strip()) == 1, out
    assert out.rstrip().endswith(f"run {run.run_id}: failed"), out
