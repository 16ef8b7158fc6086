"""`ai-wallpaper themes list|show`: the theme library as a table, or one theme in full."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ai_wallpaper.commands import json_output
from ai_wallpaper.commands.context import AppContext
from ai_wallpaper.config.locations import themes_file
from ai_wallpaper.config.sample import to_plain

SAMPLE_SEED = 0  # the seed of the example prompt whose tokens `themes list` counts


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("themes", parents=[common], help="list the themes or show one")
    actions = p.add_subparsers(dest="themes_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common],
                            help="table of themes: key, category, weight, chance, prompt tokens, name")
    ls.add_argument("--category", help="only this category")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=list_themes)
    show = actions.add_parser("show", parents=[common], help="one theme in full, with a sample prompt")
    show.add_argument("key", help="theme key")
    show.add_argument("--seed", type=int, default=0, help="seed for the sample prompt (default 0)")
    show.set_defaults(func=show_theme)


def list_themes(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.catalog.tokenizers import tokenizer_dirs_for
    from ai_wallpaper.scene.themes import load_themes, theme_probabilities

    library = load_themes(themes_file(ctx.paths, ctx.settings, ctx.settings_path))
    chance = theme_probabilities(library)
    rows = [(k, t) for k, t in library.themes.items() if args.category in (None, t.category)]
    if args.category and args.category not in library.categories:
        print(f"no category {args.category!r}; categories: {', '.join(library.categories)}")
        return 1
    models = ctx.settings.models
    dirs = tokenizer_dirs_for(models.base, models, ctx.paths)  # the tokenizer the plan counts with
    tokens = {key: theme_tokens(theme, dirs) for key, theme in rows}
    if args.json:
        json_output.emit({"file": str(library.file), "themes": [
            {"key": k, "category": t.category, "weight": t.weight, "chance": chance.get(k, 0.0),
             "tokens": tokens[k][0], "tokens_approximate": tokens[k][1], "name": t.name} for k, t in rows]})
        return 0
    width = max([len("KEY"), *(len(k) for k, _ in rows)])
    cat_width = max([len("CATEGORY"), *(len(t.category) for _, t in rows)])
    print(f"{'KEY':<{width}}  {'CATEGORY':<{cat_width}}  WEIGHT  CHANCE  TOKENS  NAME")
    for key, theme in rows:
        count, approximate = tokens[key]
        shown = f"~{count}" if approximate else str(count)
        print(f"{key:<{width}}  {theme.category:<{cat_width}}  {theme.weight:>6g}  "
              f"{chance.get(key, 0.0) * 100:>5.1f}%  {shown:>6}  {theme.name}")
    approximate_note = ""
    if any(approximate for _, approximate in tokens.values()):
        approximate_note = f"; ~ = approximate token count (no tokenizer files for {models.base} yet)"
    print(f"{len(rows)} theme(s) in {len({t.category for _, t in rows})} categor(ies) from {library.file}"
          f"{approximate_note}")
    return 0


def theme_tokens(theme: Any, tokenizer_dirs: list[Any], seed: int = SAMPLE_SEED) -> tuple[int, bool]:
    """(tokens, approximate?) of the prompt the planner would write for this theme: a template filled
    with a fixed seed (neutral mood, no LoRAs), with the theme's prompt modifiers."""
    from ai_wallpaper.scene.planner import rng_for
    from ai_wallpaper.scene.prompts import compose_prompt, prompt_tokens
    from ai_wallpaper.scene.themes import fill_template

    filled = fill_template(theme, rng_for(seed, "prompt"), None)
    mods = theme.prompt_modifiers
    prompt, _, _ = compose_prompt(filled, prepend=mods.prepend, append=mods.append)
    return prompt_tokens(prompt, tokenizer_dirs)


def show_theme(args: argparse.Namespace, ctx: AppContext) -> int:
    from ai_wallpaper.scene.planner import rng_for
    from ai_wallpaper.scene.themes import fill_template, load_themes, select_theme

    library = load_themes(themes_file(ctx.paths, ctx.settings, ctx.settings_path))
    choice = select_theme(library, rng_for(args.seed, "theme"), forced=args.key)  # raises with close matches
    theme = choice.theme
    category = library.categories[theme.category]
    print(f"{choice.key}: {theme.name}")
    print(f"category: {theme.category} ({category.name}) weight {theme.weight:g}")
    data = to_plain(theme)
    for field in ("templates", "elements", "styles", "colors", "negative"):
        if data[field]:
            print(f"{field}:")
            for item in data[field]:
                print(f"  - {item}")
    for field in ("prompt_modifiers", "lora_hints", "weather"):
        filled = {k: v for k, v in data[field].items() if v}
        if filled:
            print(f"{field}: {json.dumps(filled)}")
    print(f"sample prompt (seed {args.seed}, neutral mood):")
    print(f"  {fill_template(theme, rng_for(args.seed, 'prompt'), None)}")
    return 0
