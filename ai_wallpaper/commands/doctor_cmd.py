"""`ai-wallpaper doctor`: can a run work with today's settings? With render.backend invokeai it asks
the server: reachable, its version, the token accepted, every needed model installed, the nodes the
pipeline sends present. Exit 0 when all is well, 1 when something is missing, 5 when the server
cannot be reached."""

from __future__ import annotations

import argparse
from typing import Any

from ai_wallpaper.commands import json_output
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.commands.generate import apply_overrides
from ai_wallpaper.config.backend_settings import is_private_channel
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core.errors import ExitCode


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("doctor", parents=[common], help="check that a run can work (server, models)",
                       description="Check the render backend: for InvokeAI, contact the server and report its "
                                   "version, the models this config needs there and the nodes the pipeline uses.")
    p.add_argument("--backend", choices=["local", "invokeai"], help="check this backend instead of render.backend")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: AppContext) -> int:
    settings = apply_overrides(ctx.settings, args, str(ctx.settings_path))  # --backend, as generate takes it
    report = _invokeai(settings, ctx) if settings.render.backend == "invokeai" else _local(settings, ctx)
    if args.json:
        json_output.emit(report)
    else:
        for line in report["lines"]:
            print(line)
        for problem in report["problems"]:
            print(f"  BAD {problem}")
    return int(ExitCode.OK if not report["problems"] else ExitCode.FAILURE)


def _local(settings: Settings, ctx: AppContext) -> dict[str, Any]:
    from ai_wallpaper.render.feasibility import model_problems, work_problems

    problems = model_problems(settings, ctx.paths) + work_problems(settings)[1]
    return {"backend": "local", "lines": ["backend:    local (this machine)"], "problems": problems}


def _invokeai(settings: Settings, ctx: AppContext) -> dict[str, Any]:
    from ai_wallpaper.render.invokeai import graphs, server_models
    from ai_wallpaper.render.invokeai.remote_stages import TILED_NODE, connect

    cfg = settings.invokeai
    client = connect(settings, ctx.paths)  # a token file that others can read is refused here (exit 3)
    version = client.version()  # unreachable, refused or not InvokeAI: RunError, exit 5
    token = ("file " + str(cfg.token_file)) if cfg.token_file else (
        f"${cfg.token_env}" if client.session.headers.get("Authorization") else "none")
    lines = [f"backend:    invokeai {client.url} (InvokeAI {version}, queue {cfg.queue_id}, token: {token})"]
    if not is_private_channel(cfg.url):
        lines.append("warning:    plain http to another host: prompts, images and the token are not encrypted")
    found, problems = server_models.find_models(client, settings, ())
    if found is not None:
        for role, model in (("base", found.base), ("refiner", found.refiner), ("upscaler", found.upscaler)):
            if model is not None:
                lines.append(f"model:      {role:<9}= {model['name']} ({model['base']} {model['type']}, "
                             f"key {model['key']})")
    problems += _lora_problems(client, settings, ctx)
    nodes = client.invocation_types()
    needed = graphs.required_nodes(settings) - {TILED_NODE}  # the enhancement has its own fallback
    problems += [f"the server has no {kind!r} node (the pipeline sends it)" for kind in sorted(needed - nodes)]
    if settings.pipeline.enhance.enabled:
        where = "on the server" if TILED_NODE in nodes else f"{cfg.enhance_fallback} (no {TILED_NODE} node)"
        lines.append(f"enhance:    {where}")
    lines.append(f"scheduler:  {graphs.SCHEDULERS[settings.pipeline.txt2img.scheduler]} (InvokeAI's name)")
    return {"backend": "invokeai", "url": client.url, "version": version, "lines": lines, "problems": problems}


def _lora_problems(client: Any, settings: Settings, ctx: AppContext) -> list[str]:
    """Every enabled library LoRA must be on the server too (a run may pick any of them)."""
    from ai_wallpaper.render.invokeai.server_models import lora_on_server
    from ai_wallpaper.scene.lora_library import load_library

    if not settings.loras.enabled:
        return []
    library = load_library(ctx.paths, settings, ctx.settings_path)
    records = client.models("lora")
    problems: list[str] = []
    for key, spec in library.loras.items():
        if spec.enabled:
            lora_on_server(records, key, str(spec.path), None, 1.0, problems)
    return problems
