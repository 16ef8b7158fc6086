"""`ai-wallpaper history show [RUN_ID]`: one run's stages with time, peak memory and quality figures.

The list itself (`ai-wallpaper history`, -n, --json) is in daemon_cmd.py, which hands `show` here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ai_wallpaper.commands import json_output
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.core.errors import ExitCode, WallpaperError
from ai_wallpaper.core.history import History, RunRecord
from ai_wallpaper.render.contact_sheet import CONTACT_SHEET
from ai_wallpaper.render.run_record import RUN_JSON, STAGE_FILES, RunManifest, StageRecord, read_record

# (run.json quality key, column title, format): the figures `history show` prints, in this order.
FIGURES = (("sharpness", "sharpness", "{:.1f}"), ("noise", "noise", "{:.2f}"), ("contrast", "contrast", "{:.3f}"),
           ("colorfulness", "colorful", "{:.1f}"), ("score", "score", "{:.2f}"), ("seam", "seam", "{:.3f}"))
_WIDTHS = (10, 8, 8, 9, 9)  # stage, status, secs, peak RSS MB, peak CUDA MB


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `show RUN_ID` sub-action, on the `history` parser (which keeps its -n/--json list options)."""
    p.add_argument("history_action", nargs="?", choices=["show", "gallery"], metavar="show|gallery",
                   help="show: one run's stages (status, seconds, peak memory, quality figures); gallery: "
                        "write a self-contained HTML page of the last -n runs (opens nothing)")
    p.add_argument("run_id", nargs="?", help="with show: the run id (default: the latest run)")
    p.add_argument("--output", type=Path, metavar="FILE",
                   help="with gallery: where to write the page (default: <data dir>/gallery.html)")


def cmd_history_show(args: argparse.Namespace, ctx: AppContext) -> int:
    row = _history_row(History(ctx.paths.history_db), args.run_id)
    folder = _run_folder(row)
    # read_record, not RunDirectory.open: opening sweeps the folder's temp files, which would break a
    # run still writing there; showing a run must change nothing.
    record = read_record(folder / RUN_JSON)
    if args.json:
        json_output.emit({"runs": [{**json_output.run_json(row), "run_dir": str(folder), "final": record.final,
                                    "stages": {k: v.to_json() for k, v in record.stages.items()}}]})
        return int(ExitCode.OK)
    for line in describe(record, folder):
        print(line)
    return int(ExitCode.OK)


def cmd_history_gallery(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.commands.history_gallery import page
    from ai_wallpaper.core import atomic

    runs = History(ctx.paths.history_db).list_runs(args.limit)
    target = args.output or ctx.paths.data_dir / "gallery.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, page(runs))
    print(target)
    return int(ExitCode.OK)


def _history_row(history: History, run_id: str | None) -> RunRecord:
    if run_id is None:  # the latest run that painted, or tried to: a skipped one has nothing to show
        last = history.last_run(skipped=False)
        if last is None:
            raise WallpaperError("no runs yet", hint="`ai-wallpaper generate` makes one")
        return last
    row = history.get(run_id)
    if row is None:
        raise WallpaperError(f"no run {run_id!r} in the history", hint="`ai-wallpaper history` lists run ids")
    return row


def _run_folder(row: RunRecord) -> Path:
    if row.status == "skipped":
        raise WallpaperError(f"run {row.run_id} was skipped ({row.error or 'no reason recorded'}): it made no folder",
                             hint="`ai-wallpaper history` lists the runs that did")
    if not row.run_dir:
        raise WallpaperError(f"run {row.run_id} ({row.status}) has no run folder: it stopped before making one",
                             hint="`ai-wallpaper history` shows its error")
    folder = Path(row.run_dir)
    if not (folder / RUN_JSON).is_file():
        raise WallpaperError(f"run {row.run_id}: {folder / RUN_JSON} is gone",
                             hint="old run folders are pruned (history.keep_runs); "
                                  "`ai-wallpaper favorite RUN_ID` keeps a run's folder")
    return folder


def describe(record: RunManifest, folder: Path) -> list[str]:
    """The lines `history show` prints: a header, then one row per stage in run order."""
    lines = [f"run {record.run_id}: {record.status} ({record.trigger}), started {record.created or '-'}",
             f"folder: {folder}"]
    if record.final:
        lines.append(f"final: {record.final}")
    if (folder / CONTACT_SHEET).is_file():
        lines.append(f"contact sheet: {folder / CONTACT_SHEET}")
    if record.error:
        lines.append(f"error: {record.error.splitlines()[0]}")
    head = ("stage", "status", "secs", "RSS MB", "CUDA MB")
    lines.append(" ".join(f"{h:<{w}}" if i < 2 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(head, _WIDTHS,
                                                                                                strict=True)))
                 + "  " + " ".join(f"{title:>9}" for _, title, _ in FIGURES))
    for stage in STAGE_FILES:
        entry = record.stages.get(stage)
        lines.append(_stage_line(stage, entry))
    return lines


def _stage_line(stage: str, entry: StageRecord | None) -> str:
    if entry is None:
        return f"{stage:<{_WIDTHS[0]}} not run"
    cuda = "-" if entry.peak_cuda_mb is None else f"{entry.peak_cuda_mb:.0f}"
    cells: list[Any] = [f"{stage:<{_WIDTHS[0]}}", f"{entry.status:<{_WIDTHS[1]}}"]
    if entry.status == "skipped":
        return " ".join(cells) + f" ({entry.reason or 'skipped'})"
    cells += [f"{entry.seconds:>{_WIDTHS[2]}.2f}", f"{entry.peak_rss_mb:>{_WIDTHS[3]}.0f}", f"{cuda:>{_WIDTHS[4]}}"]
    quality = entry.quality or {}
    figures = [fmt.format(quality[key]) if key in quality else "-" for key, _, fmt in FIGURES]
    return " ".join(cells) + "  " + " ".join(f"{f:>9}" for f in figures)
