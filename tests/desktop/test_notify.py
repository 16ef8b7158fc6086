"""Desktop notifications for real: notify-send -> a private D-Bus session -> dunst on Xvfb, read back
with `dunstctl history`; and what is sent when a real run sets a wallpaper or fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_wallpaper.cli import main
from ai_wallpaper.config.settings import DesktopSettings
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.desktop.notify import notify
from tests.desktop.test_desktop_real import _require, xvfb  # noqa: F401 - the Xvfb fixture
from tests.render.test_pipeline import SMALL, write_settings

ON = DesktopSettings(notify=True)


@pytest.fixture
def dunst(xvfb: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:  # noqa: F811
    """A private session bus with dunst (a real freedesktop notification server) on the Xvfb display."""
    _require("dbus-daemon", "dunst", "dunstctl", "notify-send")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert bus.stdout is not None
    address = bus.stdout.readline().strip()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    monkeypatch.setenv("DISPLAY", xvfb)
    server = subprocess.Popen(["dunst"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.monotonic() + 10
    while subprocess.run(["dunstctl", "is-paused"], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "dunst did not come up"
        time.sleep(0.1)
    try:
        yield
    finally:
        server.terminate()
        bus.terminate()
        server.wait(timeout=10)
        bus.wait(timeout=10)


def shown() -> list[dict[str, str]]:
    """Every notification dunst received (closing them moves them into its history)."""
    subprocess.run(["dunstctl", "close-all"], check=True)
    time.sleep(0.3)
    data = json.loads(subprocess.run(["dunstctl", "history"], check=True, capture_output=True, text=True).stdout)
    return [{k: v["data"] for k, v in entry.items() if k in ("summary", "body", "appname", "urgency")}
            for entry in data["data"][0]]


def test_a_notification_reaches_a_real_server_with_its_markup_escaped(dunst: None) -> None:
    assert notify(ON, "New wallpaper", 'a lake <a href="http://evil">at dawn</a> & stars')
    [note] = shown()
    assert note["appname"] == "ai-wallpaper" and note["summary"] == "New wallpaper"
    assert note["body"] == 'a lake &lt;a href="http://evil"&gt;at dawn&lt;/a&gt; &amp; stars'  # no link


def test_off_by_default_and_never_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    assert not notify(DesktopSettings(), "x", "y", runner=lambda argv, **kw: calls.append(argv))
    assert calls == []
    monkeypatch.setenv("PATH", str(tmp_path))  # no notify-send at all
    assert not notify(ON, "x", "y")

    def failing(argv: list[str], **kw: Any) -> None:
        raise subprocess.TimeoutExpired(argv, kw["timeout"])

    monkeypatch.undo()
    assert not notify(ON, "x", "y", runner=failing)  # logged, not raised


def test_a_run_that_sets_a_wallpaper_or_fails_says_so(dunst: None, paths_with_models: Paths, tmp_path: Path) -> None:
    record = tmp_path / "set.txt"
    setter = f"import sys; open({str(record)!r}, 'a').write(sys.argv[1])"
    good = {**SMALL, "desktop": {"setter": "command", "notify": True,
                                 "command": [sys.executable, "-c", setter, "{path}"]}}
    assert main(["generate", "--config", str(write_settings(paths_with_models, good))]) == 0
    bad = {**SMALL, "desktop": {"setter": "command", "notify": True,
                                "command": [sys.executable, "-c", "raise SystemExit(3)", "{path}"]}}
    assert main(["generate", "--config", str(write_settings(paths_with_models, bad))]) == 6
    notes = {note["summary"]: note["body"] for note in shown()}
    assert set(notes) == {"New wallpaper", "Wallpaper run failed"}
    assert "a lighthouse on a cliff at dusk" in notes["New wallpaper"]
    assert "wallpaper setter failed (exit 3)" in notes["Wallpaper run failed"]
    assert record.read_text().endswith(".png")
