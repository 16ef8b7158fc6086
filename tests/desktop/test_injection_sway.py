"""sway: a hostile wallpaper path must reach sway's wordexp() as one literal word.

sway cannot run here, so its processing of the `swaymsg` command string is re-implemented below,
step by step from its source (swaywm/sway, files and functions named at each step), and the last
step calls the real glibc wordexp() through ctypes with sway's flags (0: command substitution ON).
A path holding `$(touch marker)` that is not quoted right creates the marker file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from ai_wallpaper.config.settings import DesktopSettings
from ai_wallpaper.core.errors import DesktopError
from ai_wallpaper.desktop import CommandResult, set_existing_wallpaper
from ai_wallpaper.desktop.quoting import sway_path_word

WHITESPACE = " \f\n\r\t\v"  # common/stringop.c `whitespace`
BG_MODES = ("stretch", "center", "fill", "fit", "tile")  # sway/commands/output/background.c bg_options
SWAY_WORDEXP_FLAGS = 0  # common/stringop.c expand_path(): wordexp(*path, &p, 0)
# `set $name value` variables a user may have: do_var_replacement must not touch the path.
SWAY_VARIABLES = sorted([("$mod", "Mod4"), ("$HOME", "/elsewhere"), ("$m", "M"), ("$term", "foot")],
                        key=lambda kv: -len(kv[0]))  # sway/commands/set.c keeps them longest first


def ipc_command(payload: str) -> str:
    """sway/ipc-server.c ipc_client_handle_command, IPC_COMMAND: strtok(buf, "\\n") and each line's
    terminator (but the last) becomes ';'."""
    chars, i, n = list(payload), 0, len(payload)
    while True:
        while i < n and chars[i] == "\n":
            i += 1
        j = payload.find("\n", i)
        if i >= n or j < 0:
            return "".join(chars)
        chars[j] = ";"
        i = j + 1


def argsep(s: str, start: int, delim: str) -> tuple[str, int | None]:
    """common/stringop.c argsep() (with argsep_next_interesting()): the next command and where the
    rest starts (None: no rest). Kept as written, including its `escaped` bookkeeping."""
    end, in_string, in_char, escaped = start, False, False, False
    while True:
        interesting = next((k for k in range(end, len(s)) if s[k] in "\"'\\" or s[k] in delim), None)
        if interesting is None:
            return s[start:], None
        if escaped and interesting != end:
            escaped = False
        c = s[interesting]
        if c == '"' and not in_char and not escaped:
            in_string, end = not in_string, interesting + 1
        elif c == "'" and not in_string and not escaped:
            in_char, end = not in_char, interesting + 1
        elif c == "\\":
            escaped, end = not escaped, interesting + 1
        elif not in_string and not in_char and not escaped:
            if interesting - start:
                return s[start:interesting], interesting + 1
            start = end = start + 1
        else:
            end += 1


def split_args(cmd: str) -> list[str]:
    """common/stringop.c split_args()."""
    s, argv = cmd + "\0", []
    in_token = in_string = in_char = in_brackets = escaped = False
    start = end = 0
    while s[start] != "\0":
        if not in_token:
            while s[end] != "\0" and s[end] in WHITESPACE:
                end += 1
            start, in_token = end, True
        c = s[end]
        if c == '"' and not in_char and not escaped:
            in_string = not in_string
        elif c == "'" and not in_string and not escaped:
            in_char = not in_char
        elif c == "[" and not in_string and not in_char and not in_brackets and not escaped:
            in_brackets = True
        elif c == "]" and not in_string and not in_char and in_brackets and not escaped:
            in_brackets = False
        elif c == "\\":
            escaped = not escaped
        elif c == "\0" or (not in_string and not in_char and not in_brackets and not escaped and c in WHITESPACE):
            if end - start > 0:
                argv.append(s[start:end])
            in_token = escaped = False
            continue
        if c != "\\":
            escaped = False
        end += 1
    return argv


def strip_quotes(word: str) -> str:
    """common/stringop.c strip_quotes(): unescaped quotes go, backslashes stay."""
    out, in_str, in_chr, escaped = [], False, False, False
    for c in word:
        if c == "'" and not in_str and not escaped:
            in_chr = not in_chr
        elif c == '"' and not in_chr and not escaped:
            in_str = not in_str
        elif c == "\\":
            escaped = not escaped
            out.append(c)
        else:
            escaped = False
            out.append(c)
    return "".join(out)


def do_var_replacement(s: str) -> str:
    """sway/config.c do_var_replacement()."""
    find = 0
    while (find := s.find("$", find)) >= 0:
        if find > 0 and s[find - 1] == "\\" and (find == 1 or s[find - 2] != "\\"):
            find += 1
            continue
        if s[find + 1:find + 2] == "$":
            s = s[:find] + s[find + 1:]
            find += 1
            continue
        for name, value in SWAY_VARIABLES:
            if s.startswith(name, find):
                s = s[:find] + value + s[find + len(name):]
                find += len(value)
                break
        else:
            find += 1
    return s


def execute_command(line: str) -> list[list[str]]:
    """sway/commands.c execute_command(): the argv of every command in the line."""
    commands, head = [], 0
    rest: int | None = 0
    while rest is not None:
        while head < len(line) and line[head].isspace():
            head += 1
        cmd, rest = argsep(line, head, ";,")
        head = rest or 0
        cmd = cmd.lstrip()
        if not cmd:
            continue  # "Ignoring empty command."
        argv = split_args(cmd)
        if argv[0] not in ("exec", "exec_always", "mode"):
            argv = [argv[0]] + [strip_quotes(a) if a[:1] in "\"'" else a for a in argv[1:]]
        commands.append([argv[0]] + [do_var_replacement(a) for a in argv[1:]])
    return commands


class WordExp(ctypes.Structure):
    _fields_ = [("we_wordc", ctypes.c_size_t), ("we_wordv", ctypes.POINTER(ctypes.c_char_p)),
                ("we_offs", ctypes.c_size_t)]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_libc.wordexp.argtypes = [ctypes.c_char_p, ctypes.POINTER(WordExp), ctypes.c_int]
_libc.wordexp.restype = ctypes.c_int
_libc.wordfree.argtypes = [ctypes.POINTER(WordExp)]


def wordexp(text: str) -> list[str] | None:
    """glibc wordexp(text, &p, SWAY_WORDEXP_FLAGS): the words, or None on an error return."""
    result = WordExp()
    rc = _libc.wordexp(os.fsencode(text), ctypes.byref(result), SWAY_WORDEXP_FLAGS)
    try:
        return [os.fsdecode(result.we_wordv[i]) for i in range(result.we_wordc)] if rc == 0 else None
    finally:
        _libc.wordfree(ctypes.byref(result))


def expand_path(src: str) -> list[str] | None:
    """common/stringop.c expand_path(): a backslash into every double blank, then wordexp()."""
    while "  " in src:
        i = src.index("  ") + 1
        src = src[:i] + "\\" + src[i:]
    return wordexp(src)


def sway_receives(command: str) -> tuple[list[list[str]], list[str] | None]:
    """What sway does with `swaymsg <command>`: every command's argv, and the words that
    output_cmd_background (sway/commands/output/background.c) gives the background path."""
    commands = execute_command(ipc_command(command))  # swaymsg/main.c sends its argument unchanged
    argv = commands[0]
    if argv[:3] != ["output", "*", "bg"]:
        return commands, None
    args = argv[3:]
    j = next((i for i, a in enumerate(args) if a.lower() in BG_MODES), 0)  # first scaling mode word
    return commands, expand_path(" ".join(args[:j])) if j else None  # join_args() joins with blanks


def sway_sees(path: str) -> list[str] | None:
    commands, words = sway_receives(f"output * bg {sway_path_word(Path(path))} fill")
    assert len(commands) == 1, f"{path!r} became {len(commands)} sway commands: {commands}"
    assert commands[0][:3] == ["output", "*", "bg"] and commands[0][-1] == "fill", commands
    assert len(commands[0]) == 5, f"{path!r} did not stay one argument: {commands[0]}"
    return words


def hostile_paths(tmp: Path) -> list[str]:
    marker = tmp / "marker"
    return [
        f"{tmp}/$(touch {marker})/wallpaper.png",
        f"{tmp}/`touch {marker}`/wallpaper.png",
        f"{tmp}/it's \"quoted\" 'twice'/w.png",
        f"{tmp}/two  spaces   three/w.png",
        f"{tmp}/x; exec touch {marker}/w.png",
        f"{tmp}/x, exec touch {marker}/w.png",
        f"{tmp}/100% %h %%/w.png",
        f"{tmp}/$mod $HOME ${{HOME}} $$ $/w.png",
        f"{tmp}/back\\slash \\$mod \\\\$mod \\\" \\' \\; trailing\\",
        f"{tmp}/[criteria] * ? ~ # & | < > ( ) {{a,b}} !/w.png",
        f"{tmp}/tab\there\rcr\vvt/w.png",
        f"{tmp}/fill/stretch/w fit.png",
        f"{tmp}/ünïcødé €/w.png",
        "\\leading-backslash", "'leading-quote", '"leading-dq', "~tilde", "$HOME",
    ]


def test_the_model_catches_the_old_quoting(tmp_path: Path) -> None:
    """The harness is not vacuous: the previous `"..."`-with-`\\"` quoting runs the attacker's command."""
    path = f"{tmp_path}/$(touch {tmp_path}/marker)/w.png"
    old_word = '"' + path.replace('"', '\\"') + '"'
    _commands, words = sway_receives(f"output * bg {old_word} fill")
    assert (tmp_path / "marker").exists() and words != [path]


def test_hostile_paths_arrive_literally(tmp_path: Path) -> None:
    for path in hostile_paths(tmp_path):
        assert sway_sees(path) == [path], sway_path_word(Path(path))
    assert not (tmp_path / "marker").exists()


def test_random_paths_arrive_literally(tmp_path: Path) -> None:
    pieces = [*"ab /\\\"';,$`()[]{}*?~#%&|<>!=\t", "$mod", "$(", "  ", "\\\\", "\\\"", "'\\''", "fill"]
    rng = random.Random(20240521)
    for _ in range(3000):
        path = str(Path("/" + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))))
        assert sway_sees(path) == [path], (path, sway_path_word(Path(path)))


def _set_sway(path: Path, *, procs: frozenset[str] = frozenset()) -> list[list[str]]:
    calls: list[list[str]] = []

    def runner(argv: Sequence[str], *, check: bool = True, env: Mapping[str, str] | None = None) -> CommandResult:
        calls.append(list(argv))
        return CommandResult(tuple(argv), 0, "", "")

    set_existing_wallpaper(path, DesktopSettings(setter="sway", mode="zoom"), runner=runner, env={},
                           which=lambda b: b, processes=lambda: procs)
    return calls


def test_set_sway_sends_one_literal_argument(tmp_path: Path) -> None:
    path = Path(hostile_paths(tmp_path)[0])
    [[binary, command]] = _set_sway(path)
    assert binary == "swaymsg"
    commands, words = sway_receives(command)
    assert commands == [["output", "*", "bg", commands[0][3], "fill"]] and words == [str(path)]
    assert not (tmp_path / "marker").exists()


def test_newline_is_refused_for_swaymsg_but_not_for_swww(tmp_path: Path) -> None:
    path = tmp_path / "new\nline; exec touch marker" / "w.png"
    with pytest.raises(DesktopError, match="newline") as err:
        _set_sway(path)
    assert "AI_WALLPAPER_DATA_DIR" in str(err.value)  # the fix
    # Why: sway's IPC turns every newline into ';' before any parsing, so no quoting can carry one.
    assert ipc_command('output * bg "/a\nb" fill') == 'output * bg "/a;b" fill'
    # swww/awww take the path as an argv entry: nothing to refuse.
    assert _set_sway(path, procs=frozenset({"swww-daemon"})) == [["swww", "img", str(path), "--resize", "crop"]]
