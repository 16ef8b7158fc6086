"""`ai-wallpaper plan`: print what a run would do (same as `generate --dry-run`), without torch."""

from __future__ import annotations

import argparse
from typing import Any

from ai_wallpaper.commands import json_output
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import seed_problem
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.scene.plan import Plan
from ai_wallpaper.scene.planner import PlanRequest, make_plan
from ai_wallpaper.scene.screen_fit import settings_for_plan


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("plan")
    g.add_argument("--prompt", help="use this prompt instead of a theme (theme modifiers apply with --theme)")
    g.add_argument("--negative-prompt", help="replace the settings' negative prompt (themes still add to it)")
    g.add_argument("--seed", type=_seed, help="seed for every random choice and the image (0..2^63-1)")
    g.add_argument("--theme", metavar="KEY", help="force this theme (see `ai-wallpaper themes list`)")
    g.add_argument("--no-weather", action="store_true",
                   help="do not fetch the weather (mood from time and season)")
    g.add_argument("--backend", choices=["local", "invokeai"],
                   help="where the diffusion and upscale stages run (render.backend)")


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if problem := seed_problem(value):
        raise argparse.ArgumentTypeError(problem)
    return value


def request_from_args(args: argparse.Namespace, ctx: AppContext, settings: Settings) -> PlanRequest:
    screens, size_fixed = ctx.plan_screens(settings)
    return PlanRequest(prompt=args.prompt, negative_prompt=args.negative_prompt, seed=args.seed,
                       theme=args.theme, use_weather=not args.no_weather, screens=screens,
                       base_size_fixed=size_fixed)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("plan", parents=[common], help="show what the next run would do (no models loaded)",
                       description="Pick theme, mood, LoRAs, prompt, seed and sizes exactly as a run would, "
                                   "print them and exit. Same as `generate --dry-run`.")
    add_plan_arguments(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.commands.generate import apply_overrides
    from ai_wallpaper.render.feasibility import work_problems

    settings = apply_overrides(ctx.settings, args, str(ctx.settings_path))  # --backend, as generate takes it
    plan = make_plan(ctx.paths, settings, request_from_args(args, ctx, settings), settings_path=ctx.settings_path)
    local = settings.render.backend == "local"
    # a server's memory is its own; the base size is the plan's (chosen for the monitors)
    estimates, problems = work_problems(settings_for_plan(settings, plan)) if local else ([], [])
    print_plan(plan, args.json)
    if not args.json:
        print(stages_line(settings))
        if local:
            print("estimates:  " + "; ".join(e.describe() for e in estimates))
    if problems:
        raise ConfigError(problems, hint="this run cannot work on this machine; fix the settings named above")
    return 0


def stages_line(settings: Settings) -> str:
    """Which backend runs which stage."""
    if settings.render.backend == "local":
        return "stages:     all on this machine"
    remote = ["base", *(["refined"] if settings.models.refiner else []), "upscaled"]
    here = ["final"]
    if settings.pipeline.enhance.enabled:
        remote.append("enhanced (if the server has tiled multi-diffusion, else "
                      f"{settings.invokeai.enhance_fallback})")
    return f"stages:     {', '.join(remote)} on InvokeAI {settings.invokeai.url}; {', '.join(here)} here"


def print_plan(plan: Plan, as_json: bool) -> None:
    if as_json:
        json_output.emit(plan.to_json())
        return
    print("\n".join(format_plan(plan)))


def format_plan(plan: Plan) -> list[str]:
    lines: list[str] = []
    if plan.self_test:
        lines.append("SELF-TEST: built-in random-weight model; the image will not be meaningful")
    if plan.theme:
        t = plan.theme
        lines.append(f"theme:      {t.key} - {t.name} [{t.category}]")
        if t.reason:
            lines.append(f"            {t.reason}")
    else:
        lines.append("theme:      none (fixed prompt)")
    lines.append(f"weather:    {_weather_line(plan)}")
    if plan.mood:
        m = plan.mood
        lines.append(f"mood:       {m.get('description')} "
                     f"(condition={m.get('condition') or '-'}, time={m.get('time_of_day')} "
                     f"via {m.get('time_basis')}, season={m.get('season')}, "
                     f"temp={m.get('temperature_band') or '-'}, wind={m.get('wind') or '-'})")
    if plan.loras:
        lines.append("loras:")
        for c in plan.loras:
            trig = f" triggers: {', '.join(c.trigger_words)}" if c.trigger_words else ""
            lines.append(f"  - {c.name} ({c.type}) weight {c.weight:.2f}{trig}")
            if c.reason:
                lines.append(f"      why: {c.reason}")
    else:
        lines.append("loras:      none")
    tc = plan.token_counts
    lines.append(f"prompt ({_tokens(tc, 'prompt')}):")
    lines.append(f"  {plan.prompt}")
    lines.append(f"negative ({_tokens(tc, 'negative_prompt')}):")
    lines.append(f"  {plan.negative_prompt}")
    lines.append(f"seed:       {plan.seed}")
    lines.append(f"sizes:      base {plan.base_size} -> upscaled {plan.upscaled_size} "
                 f"-> final {plan.final_size}")
    if plan.screens:
        lines.append("monitors:   " + ", ".join(f"{s.name} {s.width}x{s.height}+{s.x}+{s.y}" for s in plan.screens))
    models = ", ".join(f"{role}={spec}" for role, spec in plan.models.items() if spec)
    lines.append(f"models:     {models}")
    lines.append(f"settings:   fingerprint {plan.settings_fingerprint}")
    for w in plan.warnings:
        lines.append(f"warning:    {w}")
    return lines


def _weather_line(plan: Plan) -> str:
    status = plan.weather_status
    loc = (plan.mood or {}).get("location")
    where = f" for {loc}" if loc else ""
    text = {"live": "live", "stale": "STALE (cached report, fetch failed)",
            "absent": "absent (mood from time and season only)",
            "disabled": "off (mood from time and season only)"}.get(status, status)
    observed = (plan.mood or {}).get("observed_at")
    return f"{text}{where}" + (f", observed {observed}" if observed and status in ("live", "stale") else "")


def _tokens(counts: dict[str, int], key: str) -> str:
    if key not in counts:
        return "tokens: ?"
    extra = {k: v for k, v in counts.items() if k.startswith(key + "_") or k.startswith(key + ".")}
    detail = "".join(f", {k.removeprefix(key).lstrip('._')} {v}" for k, v in extra.items())
    return f"{counts[key]} tokens{detail}"
