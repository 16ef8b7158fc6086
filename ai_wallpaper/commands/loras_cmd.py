"""`ai-wallpaper loras list|validate|check`: the LoRA library and the state of each file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ai_wallpaper.commands import json_output
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.config.locations import lora_library_file
from ai_wallpaper.core.errors import ConfigError, ExitCode
from ai_wallpaper.scene.lora_files import FileStatus, check_file
from ai_wallpaper.scene.lora_library import LoraLibrary, load_library


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("loras", parents=[common], help="list and validate your LoRA library",
                       description="The LoRA library (loras.yaml) and the state of each LoRA file.")
    actions = p.add_subparsers(dest="loras_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common], help="table of LoRAs: key, type, weights, file status")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=list_loras)
    va = actions.add_parser("validate", parents=[common],
                            help="check loras.yaml and every enabled LoRA file; exit 1 on any problem")
    va.set_defaults(func=validate_loras)
    ck = actions.add_parser("check", parents=[common],
                            help="check LoRA files before adding them to the library")
    ck.add_argument("files", nargs="+", type=Path, metavar="FILE")
    ck.set_defaults(func=check_files)


def _rows(library: LoraLibrary) -> list[tuple[str, Any, FileStatus]]:
    return [(key, spec, library.status(key)) for key, spec in library.loras.items()]


def _status_text(spec: Any, status: FileStatus) -> str:
    word = "ok" if status.ok else status.kind
    return word if spec.enabled else f"disabled ({word})"


def list_loras(args: argparse.Namespace, ctx: AppContext) -> int:
    library = load_library(ctx.paths, ctx.settings, ctx.settings_path)
    rows = _rows(library)
    if args.json:
        json_output.emit({
            "file": str(library.file), "directory": str(library.directory), "enabled": library.enabled,
            "loras": [{"key": key, "type": spec.type, "weight_range": list(spec.weight_range),
                       "enabled": spec.enabled, "file": str(spec.path), "status": status.kind,
                       "ok": status.ok,
                       "message": status.message, "sha256": status.sha256,
                       "trigger_words": list(spec.trigger_words)} for key, spec, status in rows],
        })
        return int(ExitCode.OK)
    print(f"library: {library.file}")
    off = "" if library.enabled else "   (LoRAs disabled in settings)"
    print(f"LoRA folder: {library.directory}{off}")
    rules = library.rules
    limits = ", ".join(f"{k}={v}" for k, v in rules.type_limits.items()) or "none"
    print(f"stacking: max_loras={rules.max_loras}, weight_sum_max={rules.weight_sum_max:g}, "
          f"type_limits: {limits}")
    if not rows:
        print("no LoRAs in the library (see loras/README.md to add one)")
        return int(ExitCode.OK)
    table = [("KEY", "TYPE", "WEIGHTS", "STATUS", "FILE")]
    for key, spec, status in rows:
        lo, hi = spec.weight_range
        table.append((key, spec.type, f"{lo:g}..{hi:g}", _status_text(spec, status), spec.path.name))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return int(ExitCode.OK)


def validate_loras(args: argparse.Namespace, ctx: AppContext) -> int:
    try:
        library = load_library(ctx.paths, ctx.settings, ctx.settings_path)
    except ConfigError as exc:
        print(f"{lora_library_file(ctx.paths, ctx.settings, ctx.settings_path)}: INVALID")
        for problem in exc.problems:
            print(f"  - {problem}")
        return int(ExitCode.FAILURE)
    problems = 0
    print(f"{library.file}: schema ok ({len(library.loras)} LoRAs)")
    for key, spec, status in _rows(library):
        if status.ok:
            print(f"  ok        {key}: {status.message} (sha256 {status.sha256[:12]}…)")
        elif not spec.enabled:
            print(f"  disabled  {key}: {status.message}")
        else:
            problems += 1
            print(f"  PROBLEM   {key} ({spec.where}): {status.message}")
    if problems:
        print(f"{problems} problem(s). Fix the files, or set `enabled: false` on entries you have not "
              f"downloaded into {library.directory}.")
        return int(ExitCode.FAILURE)
    print("all enabled LoRAs are usable SDXL LoRAs")
    return int(ExitCode.OK)


def check_files(args: argparse.Namespace, ctx: AppContext) -> int:
    bad = 0
    for path in args.files:
        status = check_file(path)
        bad += not status.ok
        targets = f" [{', '.join(status.targets)}]" if status.targets else ""
        print(f"{'ok' if status.ok else status.kind:10} {path}: {status.message}{targets}")
    return int(ExitCode.FAILURE if bad else ExitCode.OK)
