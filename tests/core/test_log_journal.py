"""Logging under systemd: when stderr is the journal's stream ($JOURNAL_STREAM names its device and
inode), every line carries its syslog priority prefix, so `journalctl -p warning` works; anywhere else
the lines are unchanged. Third-party chatter stays below warnings."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ai_wallpaper.core import log


def _journal_env(fh: object, monkeypatch: pytest.MonkeyPatch) -> None:
    st = os.fstat(fh.fileno())  # type: ignore[attr-defined]
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")


def test_lines_on_the_journal_stream_carry_their_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "journal"
    with open(out, "w") as fh:
        _journal_env(fh, monkeypatch)
        assert log.journal_stream(fh)
        log.configure("debug", "json", stream=fh)
        logger = log.get("test")
        logger.debug("d")
        logger.info("i", n=1)
        logger.warning("w")
        logger.error("e")
        logging.getLogger("urllib3").warning("library warning")
    lines = out.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<4>"]
    events = [json.loads(line[3:]) for line in lines]  # the JSON is intact after the prefix
    assert [e["event"] for e in events] == ["d", "i", "w", "e", "library warning"]
    assert events[1]["n"] == 1


def test_other_streams_get_no_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, other = tmp_path / "file", tmp_path / "journal"
    other.write_text("")
    with open(other) as journal, open(out, "w") as fh:
        _journal_env(journal, monkeypatch)  # the journal is some other stream (we were redirected)
        assert not log.journal_stream(fh)
        log.configure("info", "json", stream=fh)
        log.get("test").warning("w")
    assert json.loads(out.read_text())["event"] == "w"
    monkeypatch.setenv("JOURNAL_STREAM", "garbage")
    with open(out) as fh:
        assert not log.journal_stream(fh)


def test_a_console_line_with_a_traceback_is_prefixed_line_by_line(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "journal"
    with open(out, "w") as fh:
        _journal_env(fh, monkeypatch)
        log.configure("info", "console", stream=fh)
        try:
            raise ValueError("boom")
        except ValueError:
            log.get("test").exception("failed")
    lines = out.read_text().splitlines()
    assert len(lines) > 3 and all(line.startswith("<3>") for line in lines)
    assert any("ValueError: boom" in line for line in lines)


def test_priorities_of_relayed_lines() -> None:
    assert log.line_priority(json.dumps({"event": "x", "level": "warning"})) == 4
    assert log.line_priority(json.dumps({"event": "x", "level": "info"})) == 6
    assert log.line_priority("error: config problem:") == 3
    assert log.line_priority("/x.py:3: UserWarning: careful") == 4
    assert log.line_priority("final image: /tmp/x.png") is None
    assert log.line_priority("{not json}") is None
    assert log.with_priority("a\nb", 3) == "<3>a\n<3>b"
    assert log.with_priority("<4>a", 3) == "<4>a"


def test_the_cli_error_goes_to_the_journal_as_an_error(tmp_path: Path) -> None:
    """The real CLI with stderr on a file that $JOURNAL_STREAM names: its `error:` block is priority 3."""
    err = tmp_path / "stderr"
    with open(err, "w") as fh:
        st = os.fstat(fh.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.run([sys.executable, "-m", "ai_wallpaper", "favorite", "no-such-run"], stderr=fh,
                              stdout=subprocess.PIPE, env=env, timeout=60)
    assert proc.returncode == 1
    assert err.read_text().splitlines() == ["<3>error: no run 'no-such-run' in the history",
                                            "<3>  hint: `ai-wallpaper history` lists run ids"]


def test_apscheduler_says_only_warnings_unless_debugging(capsys: pytest.CaptureFixture[str]) -> None:
    log.configure("info", "json", stream=sys.stdout)
    logging.getLogger("apscheduler.executors.default").info("Running job x")
    logging.getLogger("apscheduler.executors.default").warning("Run time of job x was missed")
    assert [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()] == [
        "Run time of job x was missed"]
    log.configure("debug", "json", stream=sys.stdout)
    logging.getLogger("apscheduler.executors.default").info("Running job y")
    assert "Running job y" in capsys.readouterr().out
