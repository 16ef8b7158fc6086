"""`ai-wallpaper pause [DURATION]` / `resume`: durations, the pause file (real files, damaged and
hostile ones too), expiry, and the CLI's words and exit codes (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ai_wallpaper.core.paths import Paths
from ai_wallpaper.service.pause import (
    MAX_PAUSE,
    PauseState,
    active_pause,
    describe_pause,
    load_pause,
    parse_duration,
    pause,
    resume,
)

NOW = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
CLI = [sys.executable, "-m", "ai_wallpaper"]


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("1d", timedelta(days=1)),
    ("1h30m", timedelta(hours=1, minutes=30)), ("90s", timedelta(seconds=90)), (" 2H ", timedelta(hours=2)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)), ("365d", MAX_PAUSE),
])
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("-1h", "is not a duration"), ("abc", "is not a duration"), ("", "is not a duration"),
    ("1.5h", "is not a duration"), ("30m1h", "is not a duration"), ("h", "is not a duration"),
    ("0m", "longer than 0 s"), ("366d", "longer than 365 days"), ("99999d", "longer than 365 days"),
    ("9999999999d", "is not a duration"),  # more digits than any pause: refused before any arithmetic
])
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_pause_resume_and_expiry(paths: Paths) -> None:
    path = paths.pause_file
    assert active_pause(path, NOW) is None and describe_pause(paths, NOW) is None
    state = pause(path, timedelta(hours=2), NOW)
    assert state == PauseState(NOW, NOW + timedelta(hours=2))
    assert json.loads(path.read_text()) == {"version": 1, "since": "2026-12-07T16:00:00+00:00",
                                            "until": "2026-12-07T18:00:00+00:00"}
    assert active_pause(path, NOW + timedelta(minutes=119)) == state
    assert active_pause(path, NOW + timedelta(hours=2)) is None  # expired: nobody has to clean it up
    described = describe_pause(paths, NOW)
    assert described is not None and described.startswith("paused until 2026-12-07 ")
    assert describe_pause(paths, NOW + timedelta(hours=3)) is None
    assert resume(path, NOW + timedelta(hours=1)) == state and not path.exists()
    assert resume(path, NOW) is None  # not paused: nothing to end, no error
    forever = pause(path, None, NOW)
    assert forever.until is None and active_pause(path, NOW + timedelta(days=3650)) == forever
    assert forever.describe() == "paused until `ai-wallpaper resume`"
    again = pause(path, timedelta(minutes=5), NOW)  # a new pause replaces the old one
    assert active_pause(path, NOW + timedelta(minutes=6)) is None and again.until is not None


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "Expecting value"),
    (b"\xff\xfe garbage", "codec can't decode"),
    (b"[1, 2]", "not a version-1 pause record"),
    (b'{"version": 2, "since": "2026-12-07T16:00:00+00:00", "until": null}', "not a version-1"),
    (b'{"version": 1, "since": 5, "until": null}', "'since' is not a time"),
    (b'{"version": 1, "since": "yesterday", "until": null}', "Invalid isoformat"),
    (b'{"version": 1, "since": "2026-12-07T16:00:00", "until": null}', "'since' has no time zone"),
    (b'{"version": 1, "since": "2026-12-07T16:00:00+00:00", "until": "9999-12-31T00:00:00+00:00"}',
     "not within 365 days"),
    (b'{"version": 1, "since": "2026-12-07T16:00:00+00:00", "until": "2026-12-07T15:00:00+00:00"}',
     "not within 365 days"),
    (b'{"version": 1, "since": "2026-12-07T16:00:00+00:00", "until": "' + b"9" * 5000 + b'"}', "larger than"),
    (b"[" * 100_000, "larger than"),
    (b"[" * 4000, "nested too deeply"),  # within the size limit, past the JSON parser's recursion
])
def test_a_damaged_pause_file_is_not_a_pause(paths: Paths, content: bytes, problem: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    path = paths.pause_file
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    state, why = load_pause(path)
    assert state is None and why is not None and problem in why and str(path) in why
    assert active_pause(path, NOW) is None
    described = describe_pause(paths, NOW)
    assert described is not None and described.startswith("not paused: the pause file is unreadable")
    assert resume(path, NOW) is None and not path.exists()  # resume clears it


def test_hostile_pause_files_never_block_or_follow(paths: Paths, tmp_path: Path) -> None:
    path = paths.pause_file
    path.parent.mkdir(parents=True)
    os.mkfifo(path)  # opening a FIFO for reading would wait forever for a writer
    state, why = load_pause(path)
    assert state is None and why is not None and "not a regular file" in why
    path.unlink()
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"version": 1, "since": NOW.isoformat(), "until": None}))
    path.symlink_to(target)  # a link is not our file: not followed
    state, why = load_pause(path)
    assert state is None and why is not None
    path.unlink()
    path.mkdir()  # a folder where the file should be: a clear error, no traceback
    with pytest.raises(Exception, match="could not write the pause file") as info:
        pause(path, None, NOW)
    assert type(info.value).__name__ == "WallpaperError"
    with pytest.raises(Exception, match="could not remove the pause file"):
        resume(path, NOW)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


def test_pause_and_resume_commands(paths: Paths) -> None:
    done = _cli("pause", "1h30m")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("paused until ") and "scheduled runs are skipped" in done.stdout
    record = json.loads(paths.pause_file.read_text())
    since, until = datetime.fromisoformat(record["since"]), datetime.fromisoformat(record["until"])
    assert until - since == timedelta(hours=1, minutes=30)
    assert oct(paths.pause_file.stat().st_mode & 0o777) == "0o600"  # the CLI's umask: the user's alone
    assert abs((since - datetime.now(UTC)).total_seconds()) < 60
    local_end = until.astimezone().strftime("%Y-%m-%d %H:%M")
    assert local_end in done.stdout  # the end, in local time
    done = _cli("resume")
    assert done.returncode == 0 and done.stdout.startswith("resumed (paused until ") and local_end in done.stdout
    assert not paths.pause_file.exists()
    done = _cli("resume")
    assert done.returncode == 0 and done.stdout.strip() == "not paused: scheduled runs go ahead"
    done = _cli("pause")
    assert done.returncode == 0 and done.stdout.startswith("paused until `ai-wallpaper resume`")
    assert json.loads(paths.pause_file.read_text())["until"] is None


@pytest.mark.parametrize(("argv", "said"), [
    (["pause", "abc"], "argument DURATION: 'abc' is not a duration"),
    (["pause", "99999d"], "argument DURATION: '99999d' is longer than 365 days"),
    (["pause", "--", "-1h"], "argument DURATION: '-1h' is not a duration"),
    # without `--`, argparse takes -1h for an option before our parser sees it; still exit 2, naming it
    (["pause", "-1h"], "unrecognized arguments: -1h"),
])
def test_bad_durations_are_usage_errors(paths: Paths, argv: list[str], said: str) -> None:
    done = _cli(*argv)
    assert done.returncode == 2 and said in done.stderr and "Traceback" not in done.stderr
    assert not paths.pause_file.exists()


def test_a_short_pause_expires_for_real(paths: Paths) -> None:
    state = pause(paths.pause_file, parse_duration("1s"))
    assert active_pause(paths.pause_file) == state
    assert state.until is not None
    deadline = state.until + timedelta(seconds=5)
    while active_pause(paths.pause_file) is not None:
        assert datetime.now(UTC) < deadline, "the pause did not end"
    assert _cli("resume").stdout.strip() == "not paused: scheduled runs go ahead"
