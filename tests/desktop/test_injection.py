"""Hostile wallpaper paths through Hyprland/hyprpaper, swww/awww, Windows and macOS setters.

Hyprland's side is modelled from its source (hyprwm/Hyprland hyprctl/src/main.cpp and
hyprctl/src/hyprpaper/Hyprpaper.cpp, hyprwm/hyprpaper v0.7 src/ipc/Socket.cpp and
src/config/ConfigManager.cpp, hyprwm/hyprlang src/config.cpp parseLine, hyprwm/hyprutils
src/string/VarList2.cpp) so that a test shows both that accepted paths arrive unchanged under every
hyprctl/hyprpaper generation and that each refused character really is mangled by one of them.
The other setters pass the path as data (argv entry, environment value), checked with a recorder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from ai_wallpaper.config.settings import DesktopSettings
from ai_wallpaper.core.errors import DesktopError
from ai_wallpaper.desktop import CommandResult, set_existing_wallpaper
from ai_wallpaper.desktop.setters import MACOS_SCRIPT, WINDOWS_IMAGE_VAR, windows_script

ENVIRONMENT = {"HOME": "/home/u", "USER": "u", "mod": "Mod4"}  # hyprpaper's environment (hyprlang vars)


class Recorder:
    def __init__(self, reply: str = "") -> None:
        self.calls: list[list[str]] = []
        self.envs: list[Mapping[str, str] | None] = []
        self.reply = reply

    def __call__(self, argv: Sequence[str], *, check: bool = True,
                 env: Mapping[str, str] | None = None) -> CommandResult:
        self.calls.append(list(argv))
        self.envs.append(env)
        return CommandResult(tuple(argv), 0, self.reply, "")


def run(setter: str, path: Path, *, procs: frozenset[str] = frozenset({"hyprpaper"}), reply: str = "",
        env: Mapping[str, str] | None = None) -> Recorder:
    rec = Recorder(reply)
    set_existing_wallpaper(path, DesktopSettings(setter=setter, mode="zoom"), runner=rec,
                           env={} if env is None else env, which=lambda b: b, processes=lambda: procs)
    return rec


# --- Hyprland: a model of hyprctl, hyprpaper <= 0.7 (hyprlang) and hyprctl >= 0.53 -----------------
def hyprctl_route(args: list[str]) -> tuple[str, str]:
    """hyprctl main(): arguments joined with blanks behind "<flags>/", routed by substring, in order."""
    full = "/" + " ".join(args)
    for needle, route in (("/instances", "instances"), ("/--batch", "batch"), ("/hyprpaper", "hyprpaper")):
        if needle in full:
            return route, full
    return "hyprland", full


def hyprlang_parse_line(line: str) -> tuple[str, str] | None:
    """hyprlang CConfig::parseLine(line, dynamic=true) up to the handler call: (LHS, RHS), or None for
    an error or a comment."""
    line = line.strip()
    comment = line.find("#")
    if comment == 0:
        return None
    last_hash = 0
    while comment != -1:
        if comment < len(line) - 1 and line[comment + 1] == "#":  # '##' is an escaped '#'
            last_hash = comment + 2
            line = line[:comment + 1] + line[comment + 2:]
            comment = line.find("#", last_hash)
        else:
            line = line[:comment]
            break
    line = line.strip()
    if "=" not in line:
        return None
    lhs, rhs = line[:line.index("=")].strip(), line[line.index("=") + 1:].strip()
    for name, value in sorted(ENVIRONMENT.items(), key=lambda kv: -len(kv[0])):  # env variables
        rhs = rhs.replace("$" + name, value)
    start = rhs.find("{{")
    while start > 0 and (len(rhs[:start]) - len(rhs[:start].rstrip("\\"))) % 2:  # escaped '{{'
        start = rhs.find("{{", start + 1)
    if start >= 0 and rhs.find("}}", start + 2) >= 0:
        return None  # an expression; never a path
    out, i = [], 0
    while i < len(rhs):  # escape removal: \\ -> \, \{ -> {, \} -> }
        if rhs[i] == "\\" and i + 1 < len(rhs) and rhs[i + 1] in "\\{}":
            out.append(rhs[i + 1])
            i += 2
            continue
        out.append(rhs[i])
        i += 1
    return lhs, "".join(out)


def old_hyprpaper(args: list[str]) -> tuple[str, str] | None:
    """hyprctl < 0.53 requestIPC() + hyprpaper <= 0.7: (request, path) hyprpaper acts on, or None."""
    route, full = hyprctl_route(args)
    if route != "hyprpaper":
        return None
    request = full[full.find("/") + 1:]
    request = request[request.find(" ") + 1:]  # strip "hyprpaper"
    request = request.encode(errors="surrogateescape")[:1023].decode(errors="surrogateescape")
    parsed = hyprlang_parse_line(f"{request[:request.find(' ')]}={request[request.find(' ') + 1:]}")
    if parsed is None:
        return None
    command, value = parsed
    if command == "wallpaper":  # handleWallpaper: monitor up to the first ',', trimPath, prefixes, '~'
        if "," not in value:
            return None
        value = value[value.index(",") + 1:].strip(" \t\r\n")
        value = value.removeprefix("contain:").removeprefix("tile:")
    if value.startswith("~"):
        value = ENVIRONMENT["HOME"] + value[1:]
    return command, value


def cvarlist2(text: str) -> list[str]:
    """hyprutils CVarList2(text, 0, ',', removeEmpty=false, allowEscape=true)."""
    args: list[str] = []
    escaped: list[int] = []
    begin = 0

    def take(chunk: str) -> str:
        for n, index in enumerate(escaped):
            chunk = chunk[:index - n] + chunk[index - n + 1:]
        return chunk.strip()

    for i, c in enumerate(text):
        if c != ",":
            continue
        if i - begin == 1 and text[i - 1] == "\\":
            escaped.append(i - begin - 1)
            continue
        if i - begin > 1 and text[i - 1] == "\\":
            escaped.append(i - begin - 1)
            if text[i - 2] != "\\":
                continue
        args.append(take(text[begin:i]))
        begin, escaped = i + 1, []
    if begin < len(text):
        args.append(take(text[begin:]))
    return args


def new_hyprctl(args: list[str]) -> tuple[str, str] | None:
    """hyprctl >= 0.53 makeHyprpaperRequest()/doWallpaper(): ("wallpaper", path) or None."""
    route, full = hyprctl_route(args)
    if route != "hyprpaper" or not full.startswith("/hyprpaper "):
        return None
    space = full.find(" ", 12)
    if full[11:space] != "wallpaper":
        return None  # "invalid hyprpaper request" (preload, unload)
    parts = cvarlist2(full[space + 1:])
    path = parts[1] if len(parts) > 1 else ""
    return "wallpaper", ENVIRONMENT["HOME"] + path[1:] if path.startswith("~") else path


def hyprpaper_receives(calls: list[list[str]]) -> dict[str, list[tuple[str, str] | None]]:
    hypr = [c[1:] for c in calls if c[0] == "hyprctl"]
    return {"old": [old_hyprpaper(a) for a in hypr], "new": [new_hyprctl(a) for a in hypr]}


ACCEPTED = ["/data/my wallpapers/w.png", "/data/it's \"quoted\"/w.png", "/data/`touch m`; x & y | z/w.png",
            "/data/(a) [b] {c} * ? ! = ~/w.png", "/data/100% %h/w.png", "/data/tab\there/w.png",
            "/data/new\nline/w.png", "/data/lone\\backslash/w.png", "/data/ünï €/w.png", "/data/x{y}z}}/w.png"]


@pytest.mark.parametrize("text", ACCEPTED)
def test_hyprpaper_gets_accepted_paths_literally(text: str) -> None:
    rec = run("hyprland", Path(text))
    assert rec.calls == [["hyprctl", "hyprpaper", "preload", text],
                         ["hyprctl", "hyprpaper", "wallpaper", f",{text}"],
                         ["hyprctl", "hyprpaper", "unload", "unused"]]
    seen = hyprpaper_receives(rec.calls)
    assert seen["old"] == [("preload", text), ("wallpaper", text), ("unload", "unused")]
    assert seen["new"] == [None, ("wallpaper", text), None]  # preload/unload: harmless "invalid request"


REFUSED = {
    ",": "/data/a,b/w.png",
    "$": "/data/$HOME/$(touch m)/w.png",
    "#": "/data/#1/w.png",
    "{{": "/data/{{x + 1}}/w.png",
    "\\\\": "/data/a\\\\b/w.png",
    "\\{": "/data/a\\{b/w.png",
    "/--batch": "/data/--batch dispatch exec touch m;/w.png",
    "/instances": "/data/instances/w.png",
}


@pytest.mark.parametrize("bad", list(REFUSED))
def test_hyprpaper_refuses_what_one_generation_mangles(bad: str) -> None:
    text = REFUSED[bad]
    argv = [["hyprpaper", "preload", text], ["hyprpaper", "wallpaper", f",{text}"]]
    old = [old_hyprpaper(a) for a in argv]
    new = new_hyprctl(argv[1])
    # Not an over-cautious refusal: sent as is, some generation would act on another path (or none).
    assert old != [("preload", text), ("wallpaper", text)] or new != ("wallpaper", text)
    with pytest.raises(DesktopError, match="cannot be given this wallpaper path literally") as err:
        run("hyprland", Path(text))
    assert repr(bad) in str(err.value) and "AI_WALLPAPER_DATA_DIR" in str(err.value)


def test_hyprctl_batch_route_would_be_command_injection() -> None:
    route, full = hyprctl_route(["hyprpaper", "wallpaper", f",{REFUSED['/--batch']}"])
    assert route == "batch" and ";" in full  # Hyprland runs each ';'-separated part as a command


def test_hyprpaper_other_refusals() -> None:
    with pytest.raises(DesktopError, match="more than 1023 bytes"):
        run("hyprland", Path("/" + "x" * 1100))
    with pytest.raises(DesktopError, match="blanks at the start or end"):
        run("hyprland", Path("/data/w.png "))
    long_ok = "/" + "y" * (1023 - len("wallpaper ,/"))
    assert old_hyprpaper(["hyprpaper", "wallpaper", f",{long_ok}"]) == ("wallpaper", long_ok)
    assert run("hyprland", Path(long_ok)).calls[1] == ["hyprctl", "hyprpaper", "wallpaper", f",{long_ok}"]


def test_hyprpaper_refusal_reply_is_an_error() -> None:
    # hyprctl < 0.53 exits 0 when hyprpaper refuses; the reply is the only sign.
    with pytest.raises(DesktopError, match=r"wallpaper failed \(not preloaded\)"):
        run("hyprland", Path("/data/w.png"), reply="wallpaper failed (not preloaded)")
    assert len(run("hyprland", Path("/data/w.png"), reply="ok\n").calls) == 3


# --- swww / awww: argv, no shell -------------------------------------------------------------------
@pytest.mark.parametrize("binary", ["swww", "awww"])
def test_swww_takes_the_path_as_one_argument(binary: str) -> None:
    text = "/data/$(touch m) `id`; a,b #c \"d\" 'e' \\f\nnew %g/w.png"
    rec = run("hyprland", Path(text), procs=frozenset({f"{binary}-daemon", "hyprpaper"}))
    assert rec.calls == [[binary, "img", text, "--resize", "crop"]]


def test_swww_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rec = run("swww", Path("-o"), procs=frozenset())  # would be swww's --outputs option as given
    assert rec.calls == [["awww", "img", str(tmp_path / "-o"), "--resize", "crop"]]


# --- Windows: constant script, path in the environment --------------------------------------------
WIN_PATHS = ["C:\\Users\\me\\Pictures\\w.png",
             "C:\\x\\'; Remove-Item -Recurse C:\\ ; '\\$(Stop-Computer)\\`\"q\"\\%TEMP%\\w.png"]


def test_windows_script_is_constant_and_path_arrives_in_env() -> None:
    recs = [run("windows", Path(p), env={"SystemRoot": "C:\\Windows"}) for p in WIN_PATHS]
    scripts = [rec.calls[0][-1] for rec in recs]
    assert scripts[0] == scripts[1] == windows_script("zoom")
    for rec, text in zip(recs, WIN_PATHS, strict=True):
        [argv] = rec.calls
        assert argv == ["powershell", "-NoProfile", "-NonInteractive", "-Command", windows_script("zoom")]
        assert not any(text in a or "Remove-Item" in a for a in argv)
        assert rec.envs[0] == {"SystemRoot": "C:\\Windows", WINDOWS_IMAGE_VAR: text}
    script = windows_script("tile")
    assert f"$env:{WINDOWS_IMAGE_VAR}" in script and "SystemParametersInfo(20, 0, $image, 3)" in script
    assert "-Name TileWallpaper -Value '1'" in script


def test_windows_without_explicit_env_inherits_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_WALLPAPER_PROBE", "kept")
    rec = Recorder()
    set_existing_wallpaper(Path(WIN_PATHS[1]), DesktopSettings(setter="windows"), runner=rec, env=None,
                           which=lambda b: b, processes=frozenset)
    env = rec.envs[0]
    assert env is not None and env["AI_WALLPAPER_PROBE"] == "kept" and env[WINDOWS_IMAGE_VAR] == WIN_PATHS[1]


# --- macOS: constant AppleScript, path as the run handler's argument ---------------------------------
def test_macos_passes_the_path_as_an_argument() -> None:
    texts = ["/Users/me/w.png", '/Users/me/a" & (do shell script "touch /tmp/m") & "/\\"/w.png']
    argvs = [run("macos", Path(t)).calls for t in texts]
    lines = [arg for line in MACOS_SCRIPT for arg in ("-e", line)]
    for [argv], text in zip(argvs, texts, strict=True):
        assert argv == ["osascript", *lines, text]
    assert MACOS_SCRIPT[0] == "on run argv" and MACOS_SCRIPT[-1] == "end run"
    assert not any(re.search(r"do shell script|/Users", line) for line in MACOS_SCRIPT)
