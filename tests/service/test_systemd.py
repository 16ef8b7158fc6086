"""systemd units: shipped copies match the renderer, every directive is commented, the hardening is in
both services, systemd-analyze verifies what `install-service` writes, hostile interpreter and config
paths round-trip through systemd's quoting, and cron lines convert to valid OnCalendar expressions."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ai_wallpaper.config.settings import ScheduleSettings, Settings
from ai_wallpaper.core.errors import ConfigError, WallpaperError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.service.systemd_units import (
    ONESHOT,
    SERVICE,
    TIMER,
    environment_assignment,
    on_calendar,
    quote_exec,
    render_units,
    systemd_word,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED_EXEC = "%h/.local/bin/ai-wallpaper"
HARDENING = ("UMask=0077", "NoNewPrivileges=yes", "LockPersonality=yes", "RestrictSUIDSGID=yes")
# Every character systemd's command-line syntax gives a meaning: specifiers, variables, quotes, escapes.
HOSTILE = "cfg %h %% $HOME ${HOME} $$ \"dq\" 'sq' \\b \\n ; x\\; `id` $(id) tab\t ü"


def _analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.fail("systemd-analyze missing: run `sudo bash scripts/system-deps.sh`")
    return binary


def _verify(*units: Path, home: Path | None = None) -> None:
    """systemd-analyze verify exits 0 even for ignored settings, so its warnings count as failures."""
    env = {**os.environ, **({"HOME": str(home)} if home else {})}
    proc = subprocess.run([_analyze(), "verify", *map(str, units)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not re.search(r"ignoring|Unknown|not executable|special characters", proc.stderr), proc.stderr


# --- a reference parser for systemd.syntax(7) "Quoting" and systemd.service(5) "Command lines" -------
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
            '"': '"', "'": "'", "s": " "}


def split_words(text: str) -> list[str]:
    """Words with quotes removed and C escapes applied. Strict: a quote may only open a word and close
    it (followed by a blank or the end), unknown escapes are errors, a lone unquoted ';' is an error."""
    words: list[str] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i == n:
            return words
        quote = text[i] if text[i] in "\"'" else None
        i += 1 if quote else 0
        word: list[str] = []
        while True:
            assert i < n or quote is None, f"unterminated quote in {text!r}"
            if i == n or (quote is None and text[i] in " \t"):
                break
            c = text[i]
            if c == quote:
                i += 1
                assert i == n or text[i] in " \t", f"closing quote inside a word: {text!r}"
                break
            assert quote is not None or c not in "\"'", f"quote inside an unquoted word: {text!r}"
            if c == "\\":
                e = text[i + 1]
                if e == "x":
                    word.append(chr(int(text[i + 2:i + 4], 16)))
                    i += 4
                    continue
                word.append(_ESCAPES[e])
                i += 2
                continue
            word.append(c)
            i += 1
        assert quote or "".join(word) != ";", "a lone ';' separates commands"
        words.append("".join(word))


def expand_specifiers(word: str, home: str) -> str:
    # systemd.unit(5): only the specifiers our units may contain are known here; others are errors.
    return re.sub(r"%(.)", lambda m: {"%": "%", "h": home}[m.group(1)], word)


def expand_variables(word: str) -> str:
    """'$$' is a '$'. Any other '$' would be substituted by systemd: our writer must never leave one."""
    parts = word.split("$$")
    assert all("$" not in p for p in parts), f"unescaped '$' in {word!r}"
    return "$".join(parts)


def parse_exec(line: str, home: str) -> tuple[str, list[str]]:
    """(program path, argv) that systemd runs for `ExecStart=<line>`."""
    words = split_words(line)
    first = expand_specifiers(words[0], home)
    prefixes = re.match(r"[-@:+!]*", first).group(0)  # type: ignore[union-attr]
    program = first[len(prefixes):]
    rest = [expand_specifiers(w, home) for w in words[1:]]
    argv = rest if "@" in prefixes else [program, *rest]
    if ":" not in prefixes:
        argv = [expand_variables(a) for a in argv]
    return program, argv


def exec_lines(unit_text: str) -> list[str]:
    return [line.removeprefix("ExecStart=") for line in unit_text.splitlines() if line.startswith("ExecStart=")]


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile("/bin/true", path)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- shipped units ----------------------------------------------------------------------------------
def test_shipped_units_are_the_rendered_ones() -> None:
    for name, text in render_units(SHIPPED_EXEC, Settings().schedule).items():
        assert (REPO / "systemd" / name).read_text() == text, f"systemd/{name} is stale: re-render it"


@pytest.mark.parametrize("name", [SERVICE, TIMER, ONESHOT])
def test_every_directive_is_commented(name: str) -> None:
    lines = (REPO / "systemd" / name).read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith(("#", "[")):
            assert lines[i - 1].startswith("#"), f"{name}: no comment above {line!r}"


def test_service_directives() -> None:
    text = (REPO / "systemd" / SERVICE).read_text()
    for directive in ("PartOf=graphical-session.target", "After=graphical-session.target",
                      "Restart=on-failure", "Nice=19", "CPUSchedulingPolicy=batch", "IOSchedulingClass=idle",
                      "KillMode=mixed",
                      "TimeoutStopSec=60", "WantedBy=graphical-session.target"):
        assert f"\n{directive}\n" in text


@pytest.mark.parametrize("name", [SERVICE, ONESHOT])
def test_hardening_in_both_services(name: str) -> None:
    text = (REPO / "systemd" / name).read_text()
    service_section = text[text.index("[Service]"):].split("\n[", 1)[0]
    for directive in HARDENING:
        assert f"\n{directive}\n" in service_section, f"{name}: {directive} missing from [Service]"
    for limit in ("MemoryHigh=", "MemoryMax=", "TasksMax="):  # present, commented out, explained
        assert re.search(rf"^#{limit}\d+[KMGT]?$", service_section, re.M), f"{name}: no commented {limit}"
        assert not re.search(rf"^{limit}", service_section, re.M), f"{name}: {limit} must stay commented out"
    assert "10 GB" in service_section and "MemoryHigh= about" in service_section


def test_shipped_units_verify(tmp_path: Path) -> None:
    # %h is the home directory: give it the program the shipped units start.
    _executable(tmp_path / ".local" / "bin" / "ai-wallpaper")
    _verify(*(REPO / "systemd" / n for n in (SERVICE, ONESHOT, TIMER)), home=tmp_path)


# --- quoting ----------------------------------------------------------------------------------------
def test_install_service_writes_units_that_verify(tmp_path: Path, paths: Paths) -> None:
    env_home = tmp_path / "home-config"
    cfg = tmp_path / HOSTILE / "my settings.yaml"
    cfg.parent.mkdir()
    cfg.write_text("schedule:\n  cron: '*/30 8-22 * * 1-5'\n  timezone: Europe/Lisbon\n"
                   "  jitter_seconds: 60\n")
    env = {**os.environ, "XDG_CONFIG_HOME": str(env_home)}
    for timer in (False, True):
        out = subprocess.run([sys.executable, "-m", "ai_wallpaper", "install-service", "--config",
                              str(cfg), *(["--timer"] if timer else [])],
                             env=env, capture_output=True, text=True, check=True).stdout
        assert "systemctl --user daemon-reload" in out
        assert f"systemctl --user enable --now {TIMER if timer else SERVICE}" in out
        assert "systemctl --user import-environment WAYLAND_DISPLAY" in out
    unit_dir = env_home / "systemd" / "user"
    assert sorted(p.name for p in unit_dir.iterdir()) == sorted([SERVICE, TIMER, ONESHOT])
    home = str(Path.home())
    [daemon_line] = exec_lines((unit_dir / SERVICE).read_text())
    assert parse_exec(daemon_line, home) == (
        sys.executable, [sys.executable, "-m", "ai_wallpaper", "daemon", "--config", str(cfg)])
    [oneshot_line] = exec_lines((unit_dir / ONESHOT).read_text())
    assert parse_exec(oneshot_line, home)[1] == [sys.executable, "-m", "ai_wallpaper", "generate", "--config",
                                                 str(cfg), "--trigger", "schedule"]
    timer_text = (unit_dir / TIMER).read_text()
    assert "OnCalendar=Mon..Fri *-*-* 8..22:0/30:00 Europe/Lisbon\n" in timer_text
    assert "RandomizedDelaySec=60s\n" in timer_text
    _verify(*(unit_dir / n for n in (SERVICE, ONESHOT, TIMER)))


@pytest.mark.parametrize("folder", ["py dir", "py %h %% dir", "py $HOME ${X} $$ dir", "py ;`id`$(id) ü"])
def test_hostile_interpreter_path_round_trips(tmp_path: Path, folder: str) -> None:
    """A real program at the path: systemd-analyze verify fails with 'not executable' unless systemd
    parsed the program path back exactly; the reference parser checks argv[0] and the arguments."""
    interpreter = _executable(tmp_path / folder / "bin" / "python3")
    cfg = tmp_path / HOSTILE / "settings.yaml"
    units = render_units(quote_exec([str(interpreter), "-m", "ai_wallpaper"]), ScheduleSettings(),
                         config_file=cfg)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    for name, text in units.items():
        (unit_dir / name).write_text(text)
    _verify(*(unit_dir / n for n in (SERVICE, ONESHOT, TIMER)))
    program, argv = parse_exec(exec_lines(units[SERVICE])[0], str(Path.home()))
    assert program == str(interpreter)
    assert argv == [str(interpreter), "-m", "ai_wallpaper", "daemon", "--config", str(cfg)]
    assert ("@" in exec_lines(units[SERVICE])[0].split()[0]) == ("$" in folder)  # argv[0] kept intact


@pytest.mark.parametrize("char", ['"', "'", "\\", "\n"])
def test_interpreter_path_systemd_cannot_run_is_refused(tmp_path: Path, char: str) -> None:
    interpreter = _executable(tmp_path / f"py{char}dir" / "python3")
    with pytest.raises(WallpaperError, match="systemd cannot run a program whose path contains") as err:
        quote_exec([str(interpreter), "-m", "ai_wallpaper"])
    assert repr(char) in str(err.value) and "virtual environment" in str(err.value)
    if char == "\n":
        return
    # Not an over-cautious refusal: systemd itself rejects the program path, however it is quoted.
    unit = tmp_path / "probe.service"
    unit.write_text(f"[Service]\nExecStart={systemd_word(str(interpreter))} -m ai_wallpaper\n")
    proc = subprocess.run([_analyze(), "verify", str(unit)], capture_output=True, text=True)
    assert "special characters" in proc.stderr, proc.stderr


@pytest.mark.parametrize("value", ["1", HOSTILE, "", "a=b", " lead", "trail "])
def test_environment_assignment_round_trips(tmp_path: Path, value: str) -> None:
    line = environment_assignment("AI_WALLPAPER_TEST", value)
    [word] = split_words(line.removeprefix("Environment="))
    assert expand_specifiers(word, "/home") == f"AI_WALLPAPER_TEST={value}"  # no '$' expansion here
    unit = tmp_path / "env.service"
    unit.write_text(f"[Service]\nExecStart=/bin/true\n{line}\n")
    _verify(unit)
    with pytest.raises(WallpaperError, match="not an environment variable name"):
        environment_assignment("A B", "x")


def test_systemd_word_leaves_plain_words_alone() -> None:
    assert systemd_word("/usr/bin/python3.11") == "/usr/bin/python3.11"
    assert systemd_word("-m") == "-m"
    assert systemd_word("100%") == "100%%" and systemd_word("a$b") == "a$$b"
    assert systemd_word(";") == '";"' and systemd_word("") == '""'
    assert systemd_word('a "b" \\c') == '"a \\"b\\" \\\\c"'


# --- OnCalendar -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cron", "expected"), [
    ("0 7 * * *", "*-*-* 7:0:00"),
    ("*/15 * * * *", "*-*-* *:0/15:00"),
    ("30 6 1 */2 *", "*-1/2-1 6:30:00"),
    ("0 9 * * 0,6", "Sat..Sun *-*-* 9:0:00"),
    ("0 9 * * sun-tue", "Mon..Tue,Sun *-*-* 9:0:00"),  # systemd weeks start on Monday: no Sun..Tue
])
def test_cron_to_on_calendar(cron: str, expected: str) -> None:
    line = on_calendar(ScheduleSettings(cron=cron))
    assert line == f"OnCalendar={expected}"
    analyze = _analyze()
    proc = subprocess.run([analyze, "calendar", expected], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_interval_and_unconvertible_cron() -> None:
    assert on_calendar(ScheduleSettings(interval_minutes=90)) == "OnActiveSec=5400s\nOnUnitActiveSec=5400s"
    with pytest.raises(ConfigError, match="ORs"):
        on_calendar(ScheduleSettings(cron="0 7 1 * 1"))


# --- one crontab reader for both schedulers ----------------------------------------------------------
@pytest.mark.parametrize("weekdays", ["1-5", "0,6", "7", "sun-tue", "*/2", "mon,3-4", "5/7"])
def test_daemon_and_timer_fire_on_the_same_weekdays(weekdays: str) -> None:
    """The same crontab weekday field, read by APScheduler (the daemon) and by systemd (the timer),
    names the same days: both come from service/crontab.py."""
    from datetime import UTC, datetime, timedelta

    from ai_wallpaper.service.daemon import build_trigger

    schedule = ScheduleSettings(cron=f"0 9 * * {weekdays}", timezone="UTC", jitter_seconds=0)
    trigger = build_trigger(schedule, jitter=False)
    fire, daemon_days = None, []
    now = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday
    for _ in range(14):
        fire = trigger.get_next_fire_time(fire, (fire or now) + timedelta(seconds=1))
        daemon_days.append(fire.strftime("%a"))
    expression = on_calendar(schedule).removeprefix("OnCalendar=")
    out = subprocess.run([_analyze(), "calendar", "--iterations=14", "--base-time=2026-12-07 00:00:00 UTC",
                          expression], capture_output=True, text=True, check=True).stdout
    timer_days = re.findall(r"(?:Next elapse|Iter\. #\d+): (\w{3}) ", out)
    assert timer_days == daemon_days


@pytest.mark.parametrize("cron", ["0 9 * * 8", "0 9 * * 5-1", "0 9 * * funday", "0 9 * *"])
def test_bad_crontab_lines_are_refused_alike(cron: str) -> None:
    from ai_wallpaper.service.daemon import build_trigger

    with pytest.raises(ConfigError, match=r"schedule\.cron"):
        build_trigger(ScheduleSettings(cron=cron, timezone="UTC"))
    with pytest.raises(ConfigError, match=r"schedule\.cron"):
        on_calendar(ScheduleSettings(cron=cron, timezone="UTC"))


def test_install_service_carries_the_users_variables_but_no_secret(tmp_path: Path, paths: Paths) -> None:
    env_home = tmp_path / "home-config"
    data = str(tmp_path / HOSTILE / "data")
    env = {**os.environ, "XDG_CONFIG_HOME": str(env_home), "AI_WALLPAPER_DATA_DIR": data,
           "AI_WALLPAPER_INVOKEAI_TOKEN": "tok-do-not-write"}
    proc = subprocess.run([sys.executable, "-m", "ai_wallpaper", "install-service"], env=env, capture_output=True,
                          text=True, check=True)
    assert "AI_WALLPAPER_INVOKEAI_TOKEN is not written into the unit" in proc.stderr
    text = (env_home / "systemd" / "user" / SERVICE).read_text()
    assert "tok-do-not-write" not in text
    carried = {}
    for line in text.splitlines():
        if line.startswith("Environment="):
            [word] = split_words(line.removeprefix("Environment="))
            name, _, value = expand_specifiers(word, str(Path.home())).partition("=")
            carried[name] = value
    assert carried["AI_WALLPAPER_DATA_DIR"] == data  # exactly, through systemd's own quoting rules
    assert carried["AI_WALLPAPER_CONFIG_DIR"] == str(paths.config_dir)
    assert "AI_WALLPAPER_INVOKEAI_TOKEN" not in carried and carried["PYTHONUNBUFFERED"] == "1"
    _verify(env_home / "systemd" / "user" / SERVICE)
