r"""Paths inside other programs' command languages: sway commands and hyprpaper requests.

Most setters pass the wallpaper path as its own argv entry, which no program re-parses. Two cannot:
sway takes one command string, and hyprpaper one request line. The path's folder comes from the
user's XDG_DATA_HOME / AI_WALLPAPER_DATA_DIR, so it may hold any character; these functions either
spell it so that it arrives literally, or refuse it with a DesktopError that names the character.

sway (read in swaywm/sway), in the order the string is processed:
 1. swaymsg/main.c joins its arguments with spaces and sends one IPC_COMMAND.
 2. sway/ipc-server.c (IPC_COMMAND) turns each newline into ';', a command separator.
 3. sway/commands.c execute_command: common/stringop.c argsep() cuts the string into commands at
    ';' and ',' outside quotes; split_args() cuts a command into words at blanks outside quotes;
    strip_quotes() drops the quote characters of a word that starts with a quote, and keeps
    backslashes; sway/config.c do_var_replacement() replaces `$name` by a `set $name` variable
    and turns `$$` into `$`.
 4. sway/commands/output/background.c output_cmd_background joins the path words and calls
    common/stringop.c expand_path(): a backslash is put into every double blank, then glibc
    wordexp(path, &p, 0). Flags 0: no WRDE_NOCMD, so `$(...)` and backticks RUN COMMANDS, `$VAR`
    expands, unquoted words are globbed and split (extra words are joined back with blanks).
So the path must become one shell word that wordexp reads literally, wrapped so that sway's own
quote removal yields exactly that word. Shell single quotes ('...') are literal; a shell quote
survives sway only inside sway quotes of the other kind, so each piece is wrapped in both.
argsep() does not reliably clear its "escaped" flag after an escaped quote, so the sway string
holds no backslash except in `\\` pairs (one escaped backslash).
"""

from __future__ import annotations

from pathlib import Path

from ai_wallpaper.core.errors import DesktopError

_DATA_DIR_FIX = ("set AI_WALLPAPER_DATA_DIR (or XDG_DATA_HOME) to a folder whose path avoids these characters, "
                 "or run swww-daemon / awww-daemon (that setter passes the path as a plain argument)")

# shell `"'"` (a single quote): sway '"' + "'" + '"'
_SWAY_SINGLE_QUOTE = "'\"'" + "\"'\"" + "'\"'"
# shell `'"'` (a double quote): sway "'" + '"' + "'"
_SWAY_DOUBLE_QUOTE = "\"'\"" + "'\"'" + "\"'\""
# shell `"\\"` (a backslash), inside sway single quotes; `\\` leaves sway's escape state clean
_SWAY_BACKSLASH = "'\"\\\\\"'"
_SWAY_SPECIAL = {"'": _SWAY_SINGLE_QUOTE, '"': _SWAY_DOUBLE_QUOTE, "\\": _SWAY_BACKSLASH}


def _sway_run(chars: list[str]) -> str:
    # shell '...' inside sway "...". `$$`: do_var_replacement turns it back into `$` (no variable).
    return "\"'" + "".join(chars).replace("$", "$$") + "'\""


def sway_path_word(path: Path) -> str:
    """`path` as the file argument of `output * bg`, arriving in sway as exactly `str(path)`.

    Every piece starts with a quote, so the word starts with one and strip_quotes() runs on it; it
    never starts with an empty shell string (glibc wordexp makes `''x` two words). No run holds two
    blanks in a row (expand_path would put a backslash between them)."""
    text = str(path)
    if "\n" in text:
        raise DesktopError(
            f"sway: the wallpaper path contains a newline: {text!r}. sway's IPC turns every newline into "
            "';' (a command separator) and a shell word cannot spell one without it, so the path is "
            "not sent", hint=_DATA_DIR_FIX)
    pieces: list[str] = []
    run: list[str] = []
    for ch in text:
        special = _SWAY_SPECIAL.get(ch)
        if run and (special is not None or (ch == " " and run[-1] == " ")):
            pieces.append(_sway_run(run))  # close the shell '...' run
            run = []
        if special is not None:
            pieces.append(special)
        else:
            run.append(ch)
    if run:
        pieces.append(_sway_run(run))
    return "".join(pieces)


# --- hyprpaper ------------------------------------------------------------------------------------
# `hyprctl hyprpaper ...` has two generations, and hyprctl (not us) picks one:
#  - hyprpaper <= 0.7 with hyprctl < 0.53: hyprctl joins its arguments with blanks and writes them to
#    hyprpaper's socket; hyprpaper (src/ipc/Socket.cpp) reads at most 1023 bytes and hands
#    "preload <path>" / "wallpaper <monitor>,<path>" to hyprlang's parseDynamic(), whose parseLine()
#    cuts at '#' (a comment; '##' is a '#'), replaces `$NAME` by any environment or config variable
#    (no escape), evaluates `{{...}}`, drops a backslash before '\', '{', '}', and trims blanks.
#    handleWallpaper() splits monitor and path at the first ',' (so the path may hold commas); a
#    leading '~' is $HOME. No shell, no wordexp.
#  - hyprpaper >= 0.8 with hyprctl >= 0.53 (hyprctl/src/hyprpaper/Hyprpaper.cpp): only
#    `wallpaper <monitor>,<path>[,<fit>]`, split by hyprutils CVarList2 at EVERY ',' (`\,` escapes
#    one, which old hyprpaper would keep literally), trimmed, then canonical(); sent over hyprwire.
# Any hyprctl routes the whole request by substring: one containing "/--batch" becomes a batch of
# Hyprland commands split at ';' (command injection), one containing "/instances" lists instances
# and exits 0 without setting anything.
# No single spelling of ',', '$', '#', '{{', '\\', '\{' or '\}' is right for both generations: those are
# refused. (A lone backslash before any other character passes both unchanged.)
_HYPR_REFUSED = {
    ",": "new hyprctl splits the request at every comma, old hyprpaper would keep an escape literally",
    "$": "hyprpaper's config parser (<= 0.7) replaces $NAME by environment variables, with no escape",
    "#": "hyprpaper's config parser (<= 0.7) starts a comment there",
    "{{": "hyprpaper's config parser (<= 0.7) evaluates {{...}} as an expression",
    "\\\\": "hyprpaper's config parser (<= 0.7) makes a double backslash a single one",
    "\\{": "hyprpaper's config parser (<= 0.7) drops a backslash before '{'",
    "\\}": "hyprpaper's config parser (<= 0.7) drops a backslash before '}'",
    "/--batch": "hyprctl would send the request to Hyprland as a batch of commands",
    "/instances": "hyprctl would list Hyprland instances instead of setting the wallpaper",
}
_HYPR_MAX_REQUEST = 1023  # hyprpaper <= 0.7 reads one 1024-byte buffer, NUL included


def hyprpaper_path(path: Path) -> str:
    """`str(path)` if it reaches hyprpaper literally through every hyprctl/hyprpaper generation."""
    text = str(path)
    problems = [f"{bad!r} ({why})" for bad, why in _HYPR_REFUSED.items() if bad in text]
    if not path.is_absolute():
        problems.append("a relative path (hyprpaper takes '~' and 'contain:'/'tile:' prefixes)")
    if text != text.strip():
        problems.append("blanks at the start or end (trimmed by hyprpaper)")
    if len(f"wallpaper ,{text}".encode(errors="surrogateescape")) > _HYPR_MAX_REQUEST:
        problems.append(f"more than {_HYPR_MAX_REQUEST} bytes with the request (cut by hyprpaper <= 0.7)")
    if problems:
        raise DesktopError(f"Hyprland/hyprpaper cannot be given this wallpaper path literally: {text!r}: "
                           + "; ".join(problems), hint=_DATA_DIR_FIX)
    return text
