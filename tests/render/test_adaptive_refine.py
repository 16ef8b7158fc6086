"""Adaptive refinement: every switch point is tried, the best quality score wins (first on a tie), every
try is recorded, and the kept image is exactly what a plain run at that switch point paints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ai_wallpaper.config.render_settings import ModelSettings
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.render.adaptive_refine import best_switch_point
from ai_wallpaper.render.run_dir import RUN_JSON, STAGE_FILES
from ai_wallpaper.render.stages.refine import RefineConfig
from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig
from tests.render.test_pipeline import SMALL, generate


@pytest.fixture(scope="module")
def photo(test_assets: Path) -> Image.Image:
    with Image.open(test_assets / "scikit-image-0.26.0" / "astronaut.png") as img:
        return img.convert("RGB").crop((0, 0, 256, 256))


def test_the_sharp_clean_try_wins_over_soft_and_grainy_ones(photo: Image.Image) -> None:
    rng = np.random.default_rng(0)
    grainy = Image.fromarray(np.clip(np.asarray(photo, float) + rng.normal(0, 12, (256, 256, 3)), 0, 255)
                             .astype(np.uint8))
    images = {0.6: photo.filter(ImageFilter.GaussianBlur(1.5)), 0.7: photo, 0.8: grainy, 0.9: photo}
    seen: list[float] = []

    def base(cfg: Any) -> Any:
        seen.append(cfg.denoising_end)
        return cfg.denoising_end  # stands in for the latents

    def refiner(latents: Any, cfg: Any) -> Image.Image:
        assert latents == cfg.high_noise_frac  # the refiner starts where the base stopped
        return images[cfg.high_noise_frac]

    kw: dict[str, Any] = {"prompt": "p", "negative_prompt": "n", "seed": 1}
    with_refiner = Settings(models=ModelSettings(refiner="builtin:tiny-refiner"))
    choice = best_switch_point([0.6, 0.7, 0.8, 0.9], Txt2ImgConfig.from_settings(with_refiner, **kw),
                               RefineConfig.from_settings(with_refiner, **kw), base, refiner, lambda: False)
    assert seen == [0.6, 0.7, 0.8, 0.9]
    assert choice.high_noise_frac == 0.7 and choice.image is photo  # 0.9 ties with it: the first stays
    assert [t["high_noise_frac"] for t in choice.tries] == [0.6, 0.7, 0.8, 0.9]
    scores = [t["score"] for t in choice.tries]
    assert scores[1] == scores[3] > max(scores[0], scores[2])


def test_the_pipeline_keeps_the_best_try_and_paints_it_exactly(paths_with_models: Any, tmp_path: Path) -> None:
    refined = {**SMALL, "models": {**SMALL["models"], "refiner": "builtin:tiny-refiner"}}
    adaptive = {**refined, "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False},
                                        "refine": {"adaptive": [0.6, 0.8]}}}
    out = tmp_path / "adaptive"
    assert generate(paths_with_models, "--save-stages", "--output", str(out), settings=adaptive) == 0
    record = json.loads((out / RUN_JSON).read_text())
    tries = record["stages"]["base"]["adaptive"]
    assert [t["high_noise_frac"] for t in tries] == [0.6, 0.8] and all("score" in t for t in tries)
    chosen = record["decisions"]["refined"]["high_noise_frac"]
    assert chosen == max(tries, key=lambda t: t["score"])["high_noise_frac"]

    plain = {**refined, "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False},
                                     "refine": {"high_noise_frac": chosen}}}
    out2 = tmp_path / "plain"
    assert generate(paths_with_models, "--save-stages", "--output", str(out2), settings=plain) == 0
    for stage in ("refined", "final"):
        with Image.open(out / STAGE_FILES[stage]) as a, Image.open(out2 / STAGE_FILES[stage]) as b:
            assert a.tobytes() == b.tobytes(), stage
