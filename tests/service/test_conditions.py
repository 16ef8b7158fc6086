"""The skip conditions: battery (psutil's reading injected), screen lock (a real gdbus against a real
ScreenSaver service on a private D-Bus session; logind, which does not run here, from its recorded
output), the GPU (nvidia-smi's real output format, recorded argv), and the order they are asked in."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ai_wallpaper.config.settings import SkipWhenSettings
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.desktop.runner import CommandResult
from ai_wallpaper.service.conditions import (
    Probes,
    condition_reason,
    gpu_busy,
    on_battery,
    pause_reason,
    run_probe,
    screen_locked,
)
from ai_wallpaper.service.pause import pause
from tests.desktop.test_desktop_real import _require
from tests.service.test_fullscreen import Recorder, ok

NO_LOGIND = CommandResult((), 1, "", "System has not been booted with systemd as init system (PID 1).")


def fail(code: int = 1, stderr: str = "") -> CommandResult:
    return CommandResult((), code, "", stderr)


# --- battery -----------------------------------------------------------------------------------------
def _battery(percent: Any, plugged: Any) -> Any:
    return lambda: SimpleNamespace(percent=percent, secsleft=3600, power_plugged=plugged)


def test_battery() -> None:
    assert on_battery(_battery(38.4, False)) == "on battery (38%)"
    assert on_battery(_battery(100, True)) is None
    assert on_battery(_battery(float("nan"), False)) == "on battery"
    assert on_battery(_battery(38, None)) is None  # unknown plug state: cannot tell
    assert on_battery(lambda: None) is None  # no battery at all: a desktop

    def broken() -> Any:
        raise OSError("sysfs went away")

    assert on_battery(broken) is None


def test_battery_reading_on_this_machine_never_raises() -> None:
    reason = on_battery(Probes().battery)  # the real psutil on whatever this machine is
    assert reason is None or reason.startswith("on battery")


# --- screen lock ---------------------------------------------------------------------------------------
def test_logind_locked_hint_of_our_session() -> None:
    run = Recorder({"loginctl": ok("yes\n")})
    assert screen_locked(run, {"XDG_SESSION_ID": "3"}) == "the screen is locked"
    assert run.calls == [["loginctl", "show-session", "3", "-p", "LockedHint", "--value"]]


def test_a_user_service_asks_logind_for_the_users_graphical_session() -> None:
    class Logind(Recorder):
        def __call__(self, argv: Sequence[str]) -> CommandResult:
            self.calls.append(list(argv))
            if argv[1] == "show-user":
                return ok("c2\n")
            return ok("no\n") if argv[0] == "loginctl" else ok("(false,)\n")

    run = Logind()
    assert screen_locked(run, {}) is None
    uid = str(os.getuid())
    assert run.calls == [
        ["loginctl", "show-user", uid, "-p", "Display", "--value"],
        ["loginctl", "show-session", "c2", "-p", "LockedHint", "--value"],
        ["gdbus", "call", "--session", "--dest", "org.freedesktop.ScreenSaver", "--object-path",
         "/org/freedesktop/ScreenSaver", "--method", "org.freedesktop.ScreenSaver.GetActive"],
        ["gdbus", "call", "--session", "--dest", "org.gnome.ScreenSaver", "--object-path",
         "/org/gnome/ScreenSaver", "--method", "org.gnome.ScreenSaver.GetActive"]]


@pytest.mark.parametrize("session", ["", "../../x", "3;reboot", "a" * 100])
def test_a_strange_session_id_is_never_passed_on(session: str) -> None:
    run = Recorder({"loginctl": ok(session), "gdbus": fail(1, "Error: ServiceUnknown")})
    assert screen_locked(run, {"XDG_SESSION_ID": session}) is None
    assert all(call[1] != "show-session" for call in run.calls)


SCREENSAVER = r'''
import sys
from gi.repository import Gio, GLib
name, path, active = sys.argv[1], sys.argv[2], sys.argv[3] == "locked"
xml = f"""<node><interface name="{name}"><method name="GetActive">
<arg type="b" direction="out"/></method></interface></node>"""
iface = Gio.DBusNodeInfo.new_for_xml(xml).interfaces[0]
def call(conn, sender, obj, iface_name, method, params, invocation):
    invocation.return_value(GLib.Variant("(b)", (active,)))
def bus_acquired(conn, _name):
    conn.register_object(path, iface, call, None, None)
def name_acquired(_conn, _name):
    print("ready", flush=True)
Gio.bus_own_name(Gio.BusType.SESSION, name, Gio.BusNameOwnerFlags.NONE, bus_acquired, name_acquired, None)
GLib.MainLoop().run()
'''


@pytest.fixture
def session_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _require("dbus-daemon", "gdbus")
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert bus.stdout is not None
    address = bus.stdout.readline().strip()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    try:
        yield address
    finally:
        bus.terminate()
        bus.wait(timeout=10)


def _screensaver(name: str, path: str, state: str, tmp_path: Path) -> subprocess.Popen[str]:
    python = "/usr/bin/python3"  # the distribution's Python has PyGObject (python3-gi); the venv need not
    if subprocess.run([python, "-c", "import gi"], capture_output=True).returncode != 0:
        pytest.fail("python3-gi is missing: run `sudo bash scripts/system-deps.sh`")
    script = tmp_path / "screensaver.py"
    script.write_text(SCREENSAVER)
    proc = subprocess.Popen([python, str(script), name, path, state], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize(("service", "state", "expected"), [
    (("org.freedesktop.ScreenSaver", "/org/freedesktop/ScreenSaver"), "locked", "the screen is locked"),
    (("org.freedesktop.ScreenSaver", "/org/freedesktop/ScreenSaver"), "unlocked", None),
    (("org.gnome.ScreenSaver", "/org/gnome/ScreenSaver"), "locked", "the screen is locked"),
])
def test_screensaver_over_a_real_session_bus(session_bus: str, tmp_path: Path, service: tuple[str, str],
                                             state: str, expected: str | None) -> None:
    saver = _screensaver(*service, state, tmp_path)
    try:
        run = Recorder({"loginctl": NO_LOGIND})  # logind is not running on a test machine
        assert screen_locked(run, {}) == expected
        assert [c[0] for c in run.calls][:2] == ["loginctl", "gdbus"]
    finally:
        saver.terminate()
        saver.wait(timeout=10)


def test_no_session_bus_and_no_logind_cannot_tell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={tmp_path}/nobody-listens")
    run = Recorder({"loginctl": NO_LOGIND})
    assert screen_locked(run, {}) is None
    assert len(run.calls) == 3 and all(run_probe(c).returncode != 0 for c in run.calls[1:])


# --- GPU ----------------------------------------------------------------------------------------------
SMI = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]


@pytest.mark.parametrize(("stdout", "expected"), [
    ("", None),  # no compute process
    ("4242, 9000\n", "the GPU is busy: other processes hold 8.8 GB (schedule.skip_when.gpu_busy_gb: 8)"),
    ("4242, 4000\n777, 4500\n", "the GPU is busy: other processes hold 8.3 GB (schedule.skip_when.gpu_busy_gb: 8)"),
    ("4242, 4000\n777, 4000\n", None),  # 7.8 GB: not more than 8
    ("4242, 8000\n1000, 90000\n", None),  # pid 1000 is this process: ours never counts
    ("4242, [N/A]\n", None),  # a driver that does not say: cannot tell
    ("4242, [N/A]\n777, 9000\n", "the GPU is busy: other processes hold 8.8 GB (schedule.skip_when.gpu_busy_gb: 8)"),
    ("<script>\n", None), ("-1, -5\n", None), ("4242, 99999999999999999999\n", None),
])
def test_gpu_busy(stdout: str, expected: str | None) -> None:
    run = Recorder({"nvidia-smi": ok(stdout)})
    assert gpu_busy(run, 8, frozenset({1000})) == expected
    assert run.calls == [SMI]


def test_no_nvidia_driver_cannot_tell() -> None:
    failing = fail(9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    assert gpu_busy(Recorder({"nvidia-smi": failing}), 0, frozenset()) is None
    assert gpu_busy(Recorder({"nvidia-smi": fail(127, "nvidia-smi: not found")}), 0, frozenset()) is None


def test_a_probe_that_hangs_is_cut_short(tmp_path: Path) -> None:
    done = run_probe([sys.executable, "-c", "import time; time.sleep(60)"])  # PROBE_TIMEOUT_S is 5 s
    assert done.returncode == 124 and "timed out" in done.stderr
    assert run_probe([str(tmp_path / "no-such-tool")]).returncode == 127


# --- which conditions, in which order --------------------------------------------------------------
def test_only_the_configured_conditions_are_asked() -> None:
    run = Recorder({"nvidia-smi": ok("1, 20000\n"), "loginctl": ok("yes"), "xprop": fail(1)})
    probes = Probes(run=run, env={"XDG_SESSION_ID": "1", "DISPLAY": ":0"}, battery=_battery(50, False))
    assert condition_reason(SkipWhenSettings(), probes) is None and run.calls == []
    assert condition_reason(SkipWhenSettings(gpu_busy_gb=4), probes) is not None
    assert run.calls == [SMI]
    everything = SkipWhenSettings(on_battery=True, screen_locked=True, fullscreen=True, gpu_busy_gb=4)
    assert condition_reason(everything, probes) == "on battery (50%)"  # the first one that holds
    assert run.calls == [SMI]  # ... and nothing after it is asked
    plugged = Probes(run=run, env=probes.env, battery=_battery(50, True))
    assert condition_reason(everything, plugged) == "the screen is locked"


def test_pause_comes_from_the_pause_file(paths: Paths) -> None:
    now = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    assert pause_reason(paths, now) is None
    pause(paths.pause_file, timedelta(hours=2), now)
    reason = pause_reason(paths, now)
    assert reason is not None and reason.startswith("paused until 2026-12-07 ")
    assert pause_reason(paths, now + timedelta(hours=2)) is None
