"""Running a prepared run folder: the pipeline, the wallpaper, history bookkeeping, pruning, the summary.

The bookkeeping rule: once a run's history row exists, it ends in a final state whatever happens —
success, failed (with the human reason) or cancelled — also on an unexpected exception, a second
Ctrl-C or a closed stdout. All records are written before anything is printed, so losing the
terminal (`generate ... | head -0`, a dead daemon's pipe) never leaves a row "running".
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.config import locations
from ai_wallpaper.config.screens import Screen
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import Cancelled, ExitCode, RunError, WallpaperError
from ai_wallpaper.core.history import FinalStatus, History
from ai_wallpaper.core.signals import CancelOnSignal
from ai_wallpaper.desktop.notify import notify
from ai_wallpaper.render.run_dir import RunDirectory
from ai_wallpaper.render.run_retention import prune_old_runs
from ai_wallpaper.scene.plan import Plan

logger = log.get(__name__)


@dataclass(frozen=True)
class ExecuteOptions:
    trigger: str
    set_wallpaper: bool
    save_stages: bool


def final_state(exc: BaseException) -> tuple[FinalStatus, str]:
    """The history status and human reason for a run that ended with `exc`."""
    if isinstance(exc, Cancelled | KeyboardInterrupt):
        return "cancelled", "cancelled by signal"
    if isinstance(exc, WallpaperError):
        return "failed", exc.message
    if isinstance(exc, BrokenPipeError):
        return "failed", "output closed (broken pipe) before the run finished"
    return "failed", f"{type(exc).__name__}: {exc}"


def execute(run_dir: RunDirectory, settings: Settings, ctx: AppContext, opts: ExecuteOptions) -> int:
    from ai_wallpaper.core.progress import publish_to, terminal_stream
    from ai_wallpaper.render.pipeline import PipelineOptions, run_pipeline

    run_id = run_dir.run_id
    log.bind_run(run_id)
    publish_to(ctx.paths.run_progress(run_id), run_id)  # `status` and systemd's STATUS= read the stage from it
    history = History(ctx.paths.history_db)
    history.start_run(run_id, trigger=opts.trigger, plan=run_dir.plan.to_json(), run_dir=str(run_dir.path))
    plan = run_dir.plan
    logger.info("run started", run_dir=str(run_dir.path), seed=plan.seed,
                theme=plan.theme.key if plan.theme else None, self_test=plan.self_test)
    wallpaper_detail: str | None = None
    try:
        # 1. every stage not yet done
        with CancelOnSignal() as cancel:
            pipeline_opts = PipelineOptions(save_stages=opts.save_stages, progress_stream=terminal_stream(),
                                            cancel=cancel.event.is_set)
            result = run_pipeline(run_dir, settings, ctx.paths, pipeline_opts)
        timings = {name: entry.seconds for name, entry in result.stages.items()}
        outputs = {name: str(run_dir.path / entry.file) for name, entry in result.stages.items()
                   if entry.file and (run_dir.path / entry.file).exists()}
        # 2. the desktop
        wallpaper = None
        if opts.set_wallpaper:
            from ai_wallpaper.desktop import apply_wallpaper

            try:
                applied = apply_wallpaper(result.final, settings.desktop, ctx.paths, run_id=run_id,
                                          screens=_screen_pictures(run_dir, plan))
            except WallpaperError as exc:
                history.finish_run(run_id, status="failed", outputs=outputs, timings=timings,
                                   error=f"image saved, setting the wallpaper failed: {exc.message}")
                raise
            wallpaper, wallpaper_detail = str(applied.path), applied.detail
        # 3. records, then pruning (never fails the run)
        history.finish_run(run_id, status="success", outputs=outputs, timings=timings, wallpaper=wallpaper)
        if wallpaper is not None:
            what = plan.theme.name if plan.theme else "fixed prompt"
            notify(settings.desktop, "New wallpaper", f"{what}: {plan.prompt}", icon=Path(wallpaper))
    except BaseException as exc:
        status, error = final_state(exc)
        try:
            if run_dir.record.status == "running":
                run_dir.finish(status, error=error)
        except OSError as write_error:  # a full or vanished disk must not keep the history row open
            logger.warning("could not update run.json", error=write_error.strerror)
        history.finish_if_running(run_id, status=status, error=error)
        if status == "failed":
            notify(settings.desktop, "Wallpaper run failed", f"{run_id}: {error}", urgency="critical")
        log.unbind_run()
        if status == "cancelled":
            _say(f"cancelled; resume with: ai-wallpaper generate --resume {run_dir.path}")
            return int(ExitCode.INTERRUPTED)
        if isinstance(exc, WallpaperError | BrokenPipeError):
            raise
        logger.error("run failed", error=error, exc_info=exc)
        raise RunError(f"run {run_id} failed: {error}",
                       hint=f"see the log above; resume with --resume {run_dir.path}") from exc
    prune_old_runs(history, settings.history.keep_runs, locations.runs_dir(ctx.paths, settings, ctx.settings_path))
    log.unbind_run()
    # 4. only now the terminal: nothing below can leave a record unfinished
    if wallpaper_detail:
        print(f"wallpaper: {wallpaper_detail}")
    _print_summary(result, plan.self_test)
    return int(ExitCode.OK)


def _screen_pictures(run_dir: RunDirectory, plan: Plan) -> list[tuple[Screen, Path]]:
    """Each monitor of the plan with its picture in the run folder (render/final_outputs.py)."""
    entry = run_dir.record.stages.get("final")
    records = (entry.screens or []) if entry is not None else []
    return [(screen, run_dir.path / r["file"]) for screen, r in zip(plan.screens, records, strict=False)]


def _say(line: str) -> None:
    with contextlib.suppress(OSError):  # stderr is gone too; the record already says it all
        print(line, file=sys.stderr)


def _print_summary(result: Any, self_test: bool) -> None:
    print(f"final image: {result.final}")
    print(f"run directory: {result.run_dir}")
    print(f"{'stage':<10} {'status':<8} {'seconds':>8} {'peak RSS MB':>12}")
    for name, entry in result.stages.items():
        print(f"{name:<10} {entry.status:<8} {entry.seconds:>8.1f} {entry.peak_rss_mb:>12.0f}")
    print(f"total {result.seconds:.1f}s")
    if self_test:
        print("note: built-in self-test model (random weights) - the image is not meaningful")
