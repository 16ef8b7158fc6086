"""Stage 5 per monitor: one cut of the 8K master for each monitor in the plan, at its native size.

Each monitor gets its own cover-crop of the whole master (render/stages/downsample.py: one Lanczos
pass, never stretched), so a portrait monitor shows an upright slice of the same picture and an
ultrawide one a wide band. Files are `05_final_<slug>.png` (config/screens.py's slugs); the first
monitor's stands for the run (history, `--resume`, notifications).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ai_wallpaper.config.screens import screen_slugs
from ai_wallpaper.render.run_dir import png_metadata
from ai_wallpaper.render.run_record import screen_file
from ai_wallpaper.render.stages.downsample import DownsampleConfig, run_downsample
from ai_wallpaper.scene.plan import Plan

if TYPE_CHECKING:
    from PIL import Image

    from ai_wallpaper.render.pipeline import _Runner
    from ai_wallpaper.render.run_dir import RunDirectory


def stage_final(runner: _Runner) -> None:
    """5. downsample: the master to the final size, or to each monitor's size."""
    cfg = DownsampleConfig.from_settings(runner.settings)
    source, compress = runner.input_image("final"), runner.settings.output.final_compress_level
    if runner.plan.screens:  # desktop.layout per-monitor or span
        with runner.stage("final"):
            image, file, screens = write_screen_finals(source, runner.plan, cfg, runner.run, compress_level=compress,
                                                       text=png_metadata(runner.plan, runner.settings))
        runner.done("final", image, compress, file=file, screens=screens)
        return
    with runner.stage("final"):
        image = run_downsample(source, cfg)
    runner.done("final", image, compress)


def write_screen_finals(master: Image.Image, plan: Plan, cfg: DownsampleConfig, run: RunDirectory, *,
                        compress_level: int, text: dict[str, str]) -> tuple[Image.Image, str, list[dict[str, Any]]]:
    """Cut and save every monitor's image. Returns (first monitor's image, its file, the records)."""
    records: list[dict[str, Any]] = []
    first: Image.Image | None = None
    for screen, slug in zip(plan.screens, screen_slugs(plan.screens), strict=True):
        image = run_downsample(master, replace(cfg, width=screen.width, height=screen.height))
        name = screen_file(slug)
        run.save_image("final", image, compress_level=compress_level, text=text, file_name=name)
        records.append({"name": screen.name, "width": screen.width, "height": screen.height, "file": name})
        first = first or image
    assert first is not None  # a plan with screens has at least one
    return first, records[0]["file"], records
