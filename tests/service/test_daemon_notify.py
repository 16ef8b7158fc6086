"""The daemon as systemd sees it, for real: a datagram socket bound where $NOTIFY_SOCKET says (a path, or
an abstract '@' name) receives READY=1, STATUS= with the next run time and then the running stage and
percent, and STOPPING=1; stderr, named by $JOURNAL_STREAM, carries journal priorities, also for the
generation child's relayed lines; `status` shows the stage and percent the run published."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ai_wallpaper.core.history import History
from ai_wallpaper.core.paths import Paths
from tests.service.test_daemon import JOB_SWAP, wait_for

CLI = [sys.executable, "-m", "ai_wallpaper"]
# A generation child that publishes progress like the real one (core/progress.py) and waits to be let go.
PROGRESS_JOB = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from ai_wallpaper.core import progress
    from ai_wallpaper.core.history import History
    from ai_wallpaper.core.paths import Paths

    args = sys.argv[1:]
    run_id, trigger = args[args.index("--run-id") + 1], args[args.index("--trigger") + 1]
    control = Path(os.environ["FAKE_JOB_CONTROL"])
    (control / f"env-{run_id}").write_text(json.dumps({"notify": os.environ.get("NOTIFY_SOCKET")}))
    paths = Paths.from_env()
    history = History(paths.history_db)
    history.start_run(run_id, trigger=trigger, plan={}, run_dir=None, pid=os.getpid())
    progress.publish_to(paths.run_progress(run_id), run_id)
    print(json.dumps({"event": "child warning", "level": "warning"}), file=sys.stderr, flush=True)
    bar = progress.StageProgress("enhanced", 4, 5, None)
    time.sleep(progress.PUBLISH_EVERY_S + 0.1)
    bar(5, 12)
    (control / "at-step").write_text(run_id)
    deadline = time.monotonic() + 60
    while not (control / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    bar(12, 12)
    bar.finish()
    print("error: not really\\n  hint: a relayed error block", file=sys.stderr, flush=True)
    history.finish_run(run_id, status="success")
""")


class NotifySocket:
    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def drain(self) -> list[dict[str, str]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return self.messages
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def wait(self, what: str, predicate: object, timeout: float = 30) -> dict[str, str]:
        message: dict[str, str] = wait_for(lambda: next((m for m in self.drain() if predicate(m)), None),  # type: ignore[operator]
                                           timeout, what)
        return message


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request: pytest.FixtureRequest) -> Iterator[tuple[str, NotifySocket]]:
    with tempfile.TemporaryDirectory(prefix="aiw-") as short:  # AF_UNIX paths are limited to 108 bytes
        address = f"{short}/notify" if request.param == "path" else f"@ai-wallpaper-test-{os.getpid()}"
        listener = NotifySocket(address)
        yield address, listener
        listener.sock.close()


def test_daemon_speaks_sd_notify_and_journal_priorities(tmp_path: Path, paths: Paths,
                                                        notify_socket: tuple[str, NotifySocket]) -> None:
    address, listener = notify_socket
    control = tmp_path / "control"
    control.mkdir()
    config = tmp_path / "settings.yaml"
    config.write_text(yaml.safe_dump({"schedule": {"cron": "0 7 * * *", "timezone": "UTC", "catch_up": False}}))
    script = tmp_path / "progress_job.py"
    script.write_text(PROGRESS_JOB)
    job = json.dumps([sys.executable, str(script), "--run-id", "{run_id}", "--trigger", "{trigger}"])
    stderr = tmp_path / "stderr"
    with open(stderr, "wb") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "FAKE_JOB_CONTROL": str(control), "NOTIFY_SOCKET": address,
               "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        daemon = subprocess.Popen([sys.executable, str(JOB_SWAP), job, "5", "daemon", "--config", str(config),
                                   "--log-format", "json"], stdout=err, stderr=err, env=env)
    try:
        ready = listener.wait("READY=1", lambda m: m.get("READY") == "1")
        assert ready["STATUS"].startswith("idle · next run at ") and ready["STATUS"].endswith(" 07:00:00 UTC")
        out = subprocess.run([*CLI, "next", "--config", str(config)], capture_output=True, text=True, check=True)
        assert f"asked the daemon (pid {daemon.pid})" in out.stdout
        run_id = wait_for(lambda: (control / "at-step").exists() and (control / "at-step").read_text(), 30,
                          "the run to reach step 5")
        busy = listener.wait("the running STATUS", lambda m: "(step 5/12)" in m.get("STATUS", ""))
        assert busy["STATUS"] == f"running {run_id}: enhanced 41% (step 5/12)"
        status = subprocess.run([*CLI, "status", "--config", str(config)], capture_output=True, text=True,
                                check=True).stdout
        assert f"now running: {run_id}: stage enhanced 41% (step 5/12), elapsed 0m 0" in status
        as_json = json.loads(subprocess.run([*CLI, "status", "--json", "--config", str(config)],
                                            capture_output=True, text=True, check=True).stdout)
        current = as_json["current_run"]
        assert (current["run_id"], current["stage"], current["step"], current["total"], current["percent"]) == (
            run_id, "enhanced", 5, 12, 41)
        assert as_json["daemon"]["running"] is True and as_json["daemon"]["pid"] == daemon.pid
        (control / "go").write_text("")
        wait_for(lambda: (r := History(paths.history_db).get(run_id)) and r.status == "success", 30, "the run")
        listener.wait("idle again", lambda m: m is listener.messages[-1] and m.get("STATUS", "").startswith("idle"))
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    stopping = [m for m in listener.drain() if m.get("STOPPING") == "1"]
    assert len(stopping) == 1 and stopping[0]["STATUS"] == "stopping"
    assert [m.get("READY") for m in listener.messages].count("1") == 1
    assert not paths.run_progress(run_id).exists()
    assert json.loads((control / f"env-{run_id}").read_text()) == {"notify": None}  # the child can't speak
    lines = stderr.read_text().splitlines()
    assert all(line[:1] != "{" for line in lines), "a JSON line without its priority"
    ours = [json.loads(line[3:]) | {"prio": line[:3]} for line in lines if line[3:4] == "{"]
    started = next(e for e in ours if e["event"] == "daemon started")
    assert started["prio"] == "<6>"
    assert next(e for e in ours if e["event"] == "child warning")["prio"] == "<4>"
    assert "<3>error: not really" in lines and "<3>  hint: a relayed error block" in lines
