"""`ai-wallpaper config validate|sample|paths`: check every config file, print the schema, show paths."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.config.locations import lora_dir, lora_library_file, runs_dir, themes_file
from ai_wallpaper.config.sample import render_sample
from ai_wallpaper.config.schema import Source, build
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.yaml_loading import load_yaml
from ai_wallpaper.core.errors import ConfigError, ExitCode

SAMPLE_HEADER = (
    "ai-wallpaper settings (settings.yaml)",
    "",
    "Generated from the schema by `ai-wallpaper config sample`; every key is listed with its",
    "default, type and bounds. Copy it to ~/.config/ai-wallpaper/settings.yaml (or point",
    "--config / $AI_WALLPAPER_CONFIG at it), change what you need, then check it with",
    "`ai-wallpaper config validate`. Unknown keys are errors.",
)


def sample_text() -> str:
    return render_sample(Settings, SAMPLE_HEADER)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("config", parents=[common], help="validate settings, print a sample, show paths")
    actions = p.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    v = actions.add_parser("validate", parents=[common],
                           help="check settings, themes and LoRA library; exit 1 on problems")
    v.set_defaults(func=validate)
    s = actions.add_parser("sample", parents=[common],
                           help="print a fully commented settings.yaml with every default")
    s.set_defaults(func=sample)
    pa = actions.add_parser("paths", parents=[common], help="print the files and folders in use")
    pa.set_defaults(func=show_paths)


def sample(args: argparse.Namespace, ctx: AppContext) -> int:
    print(sample_text(), end="")
    return 0


def validate_all(ctx: AppContext) -> tuple[list[tuple[str, list[str]]], int]:
    """[(file label, problems)] for settings, themes and LoRAs, and the total problem count."""
    from ai_wallpaper.scene.themes import check_themes_file

    report: list[tuple[str, list[str]]] = []
    settings_path = ctx.settings_path
    settings: Settings | None
    if settings_path.exists():
        settings, problems = _check_settings(settings_path)
        report.append((str(settings_path), problems))
    else:
        if ctx.explicit_config:
            report.append((str(settings_path), [f"{settings_path}: file not found"]))
            settings = None
        else:
            report.append((f"{settings_path} (absent: all defaults)", []))
            settings = Settings()
    settings_ok = settings is not None
    if settings is None:
        # Broken settings: still check the other files, at the paths the file names if it can.
        settings = _file_settings_only(settings_path)
    theme_path = themes_file(ctx.paths, settings, ctx.settings_path)
    themes, theme_problems = check_themes_file(theme_path)
    report.append((str(theme_path), [str(p) for p in theme_problems]))
    lora_label, lora_problems, library = _check_loras(ctx, settings)
    report.append((lora_label, lora_problems))
    if settings_ok:
        # What `plan` and `generate` would refuse later, before any model loads.
        from ai_wallpaper.render.feasibility import model_problems, work_problems

        if settings.render.backend == "local":  # a server's models and memory: `ai-wallpaper doctor`
            report.append(("models", model_problems(settings, ctx.paths)))
            report.append(("sizes, tiles and memory", work_problems(settings)[1]))
        report.append(("schedule", _schedule_problems(settings)))
        if library is not None and themes is not None:
            report.append(("themes x LoRA library", _theme_lora_problems(themes, library)))
    return report, sum(len(p) for _, p in report)


def _schedule_problems(settings: Settings) -> list[str]:
    from ai_wallpaper.service.daemon import build_trigger

    try:
        build_trigger(settings.schedule)  # the daemon's own parser: time zone and cron line
    except ConfigError as exc:
        return exc.problems
    return []


def schedule_warnings(settings: Settings) -> list[str]:
    """Valid for the daemon, but not expressible as a systemd timer (install-service --timer)."""
    from ai_wallpaper.service.systemd_units import check_calendar, on_calendar

    try:
        check_calendar(on_calendar(settings.schedule))
    except ConfigError as exc:
        return [f"{p} (the daemon runs it; `install-service --timer` cannot)" for p in exc.problems]
    return []


def _theme_lora_problems(themes: Any, library: Any) -> list[str]:
    from ai_wallpaper.scene.lora_selector import requirement_problems

    problems: list[str] = []
    for key, theme in themes.themes.items():
        problems += requirement_problems(library, theme.lora_hints.to_hints(), theme_key=key,
                                         category=theme.category)
    if library.enabled:
        for key, spec in library.loras.items():
            status = library.status(key) if spec.enabled else None
            if status is not None and not status.ok:
                problems.append(f"{spec.where}: loras.{key}.file: {status.message} (an enabled LoRA; "
                                "set enabled: false until the file is there)")
    return problems


def _check_settings(path: Path) -> tuple[Settings | None, list[str]]:
    try:
        data, source = load_yaml(path)
    except ConfigError as exc:
        return None, exc.problems
    parsed, problems = build(Settings, data, source)
    return parsed, [str(p) for p in problems]


def _file_settings_only(path: Path) -> Settings:
    """Defaults plus the settings file's own themes/loras sections when those alone are valid."""
    try:
        data, _ = load_yaml(path)
    except ConfigError:
        return Settings()
    if not isinstance(data, dict):
        return Settings()
    for keep in (("themes", "loras"), ("themes",), ("loras",)):
        trial, problems = build(Settings, {k: data[k] for k in keep if k in data}, Source(str(path)))
        if trial is not None and not problems:
            return trial
    return Settings()


def _check_loras(ctx: AppContext, settings: Settings) -> tuple[str, list[str], Any]:
    from ai_wallpaper.scene import lora_library as loras

    label = str(lora_library_file(ctx.paths, settings, ctx.settings_path))
    try:
        library = loras.load_library(ctx.paths, settings, ctx.settings_path)
    except ConfigError as exc:
        return label, exc.problems, None
    return label, [], library


def validate(args: argparse.Namespace, ctx: AppContext) -> int:
    report, total = validate_all(ctx)
    for label, problems in report:
        print(f"{'ok ' if not problems else 'BAD'}  {label}")
        for p in problems:
            print(f"     - {p}")
    if ctx.settings_path.exists() or not ctx.explicit_config:
        try:
            for warning in schedule_warnings(ctx.settings):
                print(f"note: {warning}")
        except ConfigError:
            pass  # already reported above
    if total:
        print(f"{total} problem(s) found")
        return int(ExitCode.FAILURE)
    print("all config files are valid")
    return int(ExitCode.OK)


def show_paths(args: argparse.Namespace, ctx: AppContext) -> int:
    p = ctx.paths
    try:
        settings = ctx.settings
    except ConfigError:
        settings = Settings()
        print("(settings file has problems: showing default locations; run `config validate`)")
    where = ctx.settings_path
    rows: list[tuple[str, Path]] = [
        ("config dir", p.config_dir), ("data dir", p.data_dir), ("cache dir", p.cache_dir),
        ("state dir", p.state_dir), ("settings file", where),
        ("themes file", themes_file(p, settings, where)), ("loras file", lora_library_file(p, settings, where)),
        ("lora folder", lora_dir(p, settings, where)), ("runs", runs_dir(p, settings, where)),
        ("wallpapers", p.wallpapers_dir), ("models", p.models_dir), ("weather cache", p.weather_cache_dir),
        ("history db", p.history_db),
    ]
    for name, value in rows:
        exists = "" if value.exists() else "  (absent)"
        print(f"{name:<14} {value}{exists}")
    return 0
