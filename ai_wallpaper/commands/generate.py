"""`ai-wallpaper generate`: plan, run every stage, save, set the wallpaper, record history."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.config import locations
from ai_wallpaper.config.sample import to_plain
from ai_wallpaper.config.schema import Source, build_or_raise
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ConfigError, ExitCode, UsageError
from ai_wallpaper.core.history_db import TRIGGERS

logger = log.get(__name__)

# CLI flag -> settings key path. Overrides go back through the schema, so they are validated
# exactly like the file (bounds, multiples of 8, overlap < tile...).
OVERRIDES: dict[str, tuple[str, ...]] = {
    "backend": ("render", "backend"),
    "model": ("models", "base"),
    "refiner": ("models", "refiner"),
    "upscaler": ("models", "upscaler"),
    "device": ("models", "device"),
    "dtype": ("models", "dtype"),
    "width": ("pipeline", "txt2img", "width"),
    "height": ("pipeline", "txt2img", "height"),
    "steps": ("pipeline", "txt2img", "steps"),
    "guidance": ("pipeline", "txt2img", "guidance_scale"),
    "scheduler": ("pipeline", "txt2img", "scheduler"),
    "upscale_tile": ("pipeline", "upscale", "tile"),
    "enhance_steps": ("pipeline", "enhance", "steps"),
    "strength": ("pipeline", "enhance", "strength"),
    "tile": ("pipeline", "enhance", "tile"),
    "overlap": ("pipeline", "enhance", "overlap"),
    "batch_size": ("pipeline", "enhance", "batch_size"),
    "final_width": ("output", "width"),
    "final_height": ("output", "height"),
    "anchor": ("output", "anchor"),
}


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from ai_wallpaper.commands.plan_cmd import add_plan_arguments

    p = sub.add_parser("generate", parents=[common], help="generate a wallpaper now",
                       description="Run the whole pipeline once and set the result as the wallpaper.")
    add_plan_arguments(p)
    p.add_argument("--save-stages", action="store_true", help="keep every intermediate image in the run directory")
    p.add_argument("--output", type=Path, metavar="DIR", help="run directory (default: <runs dir>/<run id>)")
    p.add_argument("--no-wallpaper", action="store_true", help="do not set the desktop wallpaper")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit without loading models")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the plan as JSON")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its last stage")
    g = p.add_argument_group("overrides (take precedence over the settings file)")
    g.add_argument("--model", help="SDXL base: hub id, diffusers dir, .safetensors file or builtin:tiny")
    g.add_argument("--refiner", help="SDXL refiner (same forms); 'none' disables it")
    g.add_argument("--upscaler", help="4x upscaler weights (.pth/.safetensors) or builtin:tiny")
    g.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"])
    g.add_argument("--dtype", choices=["auto", "float16", "bfloat16", "float32"])
    g.add_argument("--width", type=int, help="base width (default 1920)")
    g.add_argument("--height", type=int, help="base height (default 1024)")
    g.add_argument("--steps", type=int, help="txt2img steps")
    g.add_argument("--guidance", type=float, help="txt2img CFG scale")
    g.add_argument("--scheduler", help="txt2img sampler")
    g.add_argument("--upscale-tile", type=int, help="upscaler tile size")
    g.add_argument("--enhance-steps", type=int, help="enhancement nominal steps")
    g.add_argument("--strength", type=float, help="enhancement strength 0..1")
    g.add_argument("--tile", type=int, help="enhancement tile size")
    g.add_argument("--overlap", type=int, help="enhancement tile overlap")
    g.add_argument("--batch-size", type=int, help="enhancement tiles per UNet call")
    g.add_argument("--no-enhance", action="store_true", help="skip the 8K enhancement stage")
    g.add_argument("--final-width", type=int, help="final width (default 3840)")
    g.add_argument("--final-height", type=int, help="final height (default 2160)")
    g.add_argument("--anchor", help="crop anchor when aspect ratios differ")
    p.add_argument("--run-id", type=_run_id_arg, help=argparse.SUPPRESS)
    p.add_argument("--trigger", default="manual", choices=TRIGGERS,
                   help=argparse.SUPPRESS)
    p.set_defaults(func=run)


MODEL_FLAGS = ("model", "refiner", "upscaler")


def explicit_path(value: str) -> str:
    """A model typed on the command line as ./name or ../name means the shell's current directory:
    make it absolute here, because settings never look a model up in the working directory."""
    if value.startswith(("./", "../", ".\\", "..\\")) or value in (".", ".."):
        return str(Path.cwd() / value)
    return value


def apply_overrides(settings: Settings, args: argparse.Namespace, origin: str) -> Settings:
    data = to_plain(settings)
    changed = False
    for flag, key in OVERRIDES.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if flag == "refiner" and value.lower() == "none":
            value = None
        elif flag in MODEL_FLAGS:
            value = explicit_path(value)
        node = data
        for part in key[:-1]:
            node = node[part]
        node[key[-1]] = value
        changed = True
    if getattr(args, "no_enhance", False):
        data["pipeline"]["enhance"]["enabled"] = False
        changed = True
    if getattr(args, "save_stages", False):
        data["output"]["save_stages"] = True
        changed = True
    if not changed:
        return settings
    try:
        return build_or_raise(Settings, data, Source(f"{origin} + command-line overrides"))
    except ConfigError as exc:  # the file itself loaded: what is wrong now is a flag's value
        raise UsageError("invalid command-line value(s):\n" + "\n".join(f"  - {p}" for p in exc.problems),
                         hint="the bounds are the settings' own: `ai-wallpaper config sample` lists them") from None


def _run_id_arg(value: str) -> str:
    from ai_wallpaper.render.run_record import is_run_id

    if not is_run_id(value):  # it becomes a folder name: no "/", no ".."
        raise argparse.ArgumentTypeError(f"{value!r} is not a run id (YYYYMMDD-HHMMSS-xxxxxx)")
    return value


def recorded_settings(settings: Settings) -> dict[str, Any]:
    """Settings as run.json records them: the home location no more precise than the weather uses."""
    from ai_wallpaper.scene.weather import coarse

    data: dict[str, Any] = to_plain(settings)
    location = data["weather"]["location"]
    for key in ("latitude", "longitude"):
        if location[key] is not None:
            location[key] = coarse(location[key])
    return data


def run(args: argparse.Namespace, ctx: AppContext) -> int:
    """A scheduled, catch-up or `next` run that fails before its run starts (bad config, missing model,
    full disk) still leaves a final history row, so `status` says why the wallpaper did not come.

    A scheduled or catch-up run first checks the pause and `schedule.skip_when` (service/conditions.py)
    and, if one holds, records a "skipped" row with the reason and exits 0 without planning or loading
    anything. `manual` (`generate`) and `next` are the user asking now: they always run."""
    if args.trigger == "manual" or args.dry_run or args.resume:
        return _run(args, ctx)
    from ai_wallpaper.render.run_record import new_run_id
    from ai_wallpaper.service.conditions import SKIPPABLE_TRIGGERS

    args.run_id = args.run_id or new_run_id()
    try:
        if args.trigger in SKIPPABLE_TRIGGERS and (reason := _skip_reason(ctx)):
            return _skip(ctx, args.run_id, args.trigger, reason)
        return _run(args, ctx)
    except Exception as exc:
        _record_unstarted(ctx, args.run_id, args.trigger, exc)
        raise


def _skip_reason(ctx: AppContext) -> str | None:
    """The pause first (it needs no settings: a broken config while paused is no failure), then the
    configured conditions; a config that does not load raises here and is recorded as failed."""
    from ai_wallpaper.service.conditions import condition_reason, pause_reason

    if reason := pause_reason(ctx.paths):
        return reason
    return condition_reason(ctx.load()[0].schedule.skip_when)


def _skip(ctx: AppContext, run_id: str, trigger: str, reason: str) -> int:
    from ai_wallpaper.core.history import History

    if not History(ctx.paths.history_db).record_skipped(run_id, trigger=trigger, reason=reason):
        logger.warning("run id already in the history; the skip is not recorded", run_id=run_id)
    logger.info("scheduled run skipped", trigger=trigger, reason=reason)
    print(f"skipped: {reason}")
    return int(ExitCode.OK)


def _record_unstarted(ctx: AppContext, run_id: str, trigger: str, exc: Exception) -> None:
    from ai_wallpaper.core.errors import WallpaperError
    from ai_wallpaper.core.history import History

    error = str(exc) if isinstance(exc, WallpaperError) else f"unexpected {type(exc).__name__}: {exc}"
    try:  # a row that already exists (the run started and recorded itself) is left alone
        History(ctx.paths.history_db).record_unstarted(run_id, trigger=trigger, status="failed", error=error)
    except Exception as db_error:  # the history is the report's copy: it must not hide the error itself
        logger.warning("could not record the failed run in the history", error=repr(db_error))


def _run(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.commands.plan_cmd import print_plan, request_from_args
    from ai_wallpaper.scene.planner import make_plan

    settings, source = ctx.load()
    # 1. settings and plan (a resumed run reuses the recorded ones)
    if args.resume:
        return _resume(args, ctx)
    settings = apply_overrides(settings, args, source.file)
    if args.output is not None and not args.dry_run:
        from ai_wallpaper.render.run_dir import new_folder_problem

        if problem := new_folder_problem(args.output):  # before the weather, the plan and any model
            raise UsageError(f"--output: {problem}", hint="choose an empty or new folder you can write to, "
                                                          f"or continue a run there with --resume {args.output}")
    plan = make_plan(ctx.paths, settings, request_from_args(args, ctx, settings), settings_path=ctx.settings_path)
    if args.dry_run:
        print_plan(plan, args.json)
        return int(ExitCode.OK)
    from ai_wallpaper.render.feasibility import preflight
    from ai_wallpaper.render.run_dir import RunDirectory
    from ai_wallpaper.render.run_record import new_run_id
    from ai_wallpaper.scene.screen_fit import settings_for_plan

    preflight(settings_for_plan(settings, plan), ctx.paths)  # at the base size the plan chose for the monitors
    run_id = args.run_id or new_run_id()
    runs_dir = locations.runs_dir(ctx.paths, settings, ctx.settings_path)
    run_path = args.output if args.output else runs_dir / run_id
    run_dir = RunDirectory.create(run_path, run_id=run_id, plan=plan, settings=recorded_settings(settings),
                                  trigger=args.trigger, owned=not args.output)
    return _execute(run_dir, settings, args, ctx, save_stages=settings.output.save_stages)


def _resume(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.config.settings import settings_from_dict
    from ai_wallpaper.render.run_dir import RunDirectory

    changing = [f"--{k.replace('_', '-')}" for k in (*OVERRIDES, "prompt", "seed", "theme")
                if getattr(args, k, None) is not None]
    if changing or args.no_enhance:
        raise UsageError(f"--resume continues a run exactly as planned; drop {', '.join(changing) or '--no-enhance'}",
                       hint="start a new run to change the prompt, seed or settings")
    if not args.resume.is_dir():
        raise UsageError(f"--resume {args.resume}: no such folder",
                             hint="pass the run folder a previous run printed (`ai-wallpaper history`)")
    run_dir = RunDirectory.open(args.resume)  # validated: a foreign or damaged run.json is exit 3
    recorded = settings_from_dict(run_dir.record.settings, file=str(run_dir.path / "run.json"))
    # Only the recipe (models, stages, sizes) comes from the folder; desktop, directories, commands,
    # downloads and servers come from the current config: a run folder is data, never instructions.
    settings = ctx.load()[0].with_recipe_of(recorded)
    if run_dir.record.status == "success":
        print(f"{run_dir.path} is already complete: {run_dir.record.final}")
        return int(ExitCode.OK)
    return _execute(run_dir, settings, args, ctx, save_stages=args.save_stages or settings.output.save_stages)


def _execute(run_dir: Any, settings: Settings, args: argparse.Namespace, ctx: AppContext, *,
             save_stages: bool) -> int:
    from ai_wallpaper.commands.run_execution import ExecuteOptions, execute

    return execute(run_dir, settings, ctx, ExecuteOptions(trigger=args.trigger, set_wallpaper=not args.no_wallpaper,
                                                          save_stages=save_stages))
