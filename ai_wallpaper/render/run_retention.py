"""Removing old run folders: only folders the program made, holding only the files it writes.

The history keeps every row (`history.keep_runs` bounds the folders, not the history); a favorite, a
folder chosen with --output, or anything the user put in a run folder keeps that folder.
"""

from __future__ import annotations

from pathlib import Path

from ai_wallpaper.core import log
from ai_wallpaper.core.history import History
from ai_wallpaper.render.run_dir import OWNER_MARKER, is_our_temp_file, our_file_names

logger = log.get(__name__)


def prune_old_runs(history: History, keep: int, runs_dir: Path) -> None:
    """Remove old run directories beyond history.keep_runs: only folders the program made and that
    hold only its files (never favorites, --output folders or anything the user put there).
    The history rows stay: history is never truncated."""
    try:
        prunable = history.prunable_runs(keep)
    except Exception as exc:  # a finished run stays finished: pruning is housekeeping
        logger.warning("could not list old runs to prune", error=repr(exc))
        return
    for record in prunable:
        folder = Path(record.run_dir) if record.run_dir else None
        if folder is None or not folder.exists():
            continue
        try:
            kept = prune_run_folder(folder, record.run_id, runs_dir)
        except OSError as exc:
            kept = f"{exc.strerror}"
        if kept is None:
            logger.info("pruned old run directory", run_dir=str(folder), pruned_run=record.run_id)
        else:
            logger.debug("old run directory kept", run_dir=str(folder), reason=kept)


def prune_run_folder(folder: Path, run_id: str, runs_dir: Path) -> str | None:
    """Remove a finished run's folder if, and only if, everything in it is ours.

    Ours means: directly under `runs_dir`, a real directory (not a link), carrying OWNER_MARKER with
    this run id (so never a folder chosen with --output), and holding nothing but files this program
    writes there. Files are unlinked one by one and the folder removed with rmdir, so a file that
    appears meanwhile keeps the folder. Returns None when removed, else why it was kept.
    """
    if folder.is_symlink() or not folder.is_dir():
        return "not a directory"
    if folder.parent.resolve() != runs_dir.resolve():
        return "not directly under the runs directory"
    try:
        marker = (folder / OWNER_MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return f"no {OWNER_MARKER} marker (a folder chosen with --output, or not made by ai-wallpaper)"
    if marker != run_id:
        return f"its {OWNER_MARKER} names another run ({marker[:40]!r})"
    entries = list(folder.iterdir())
    foreign = [e.name for e in entries
               if e.is_symlink() or not e.is_file()
               or not (e.name in our_file_names() or is_our_temp_file(e.name))]
    if foreign:
        return f"holds files ai-wallpaper did not write: {', '.join(sorted(foreign)[:5])}"
    for entry in entries:
        if entry.name != OWNER_MARKER:
            entry.unlink(missing_ok=True)
    (folder / OWNER_MARKER).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError as exc:  # something appeared meanwhile: keep it, with the marker gone it stays kept
        return f"not empty after removing our files ({exc.strerror})"
    return None
