"""The 8K enhancement runs with the same LoRA stack as the base stage (a real peft LoRA on the tiny
model), and run.json records each diffusion stage's prompt and LoRAs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from ai_wallpaper.cli import main
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.run_dir import RUN_JSON, STAGE_FILES
from ai_wallpaper.scene.plan import Plan
from tests import lora_factory as lf
from tests.render.test_pipeline import SMALL, write_settings


def glow_library(tiny_pipe: Any, tmp_path: Path) -> dict[str, str]:
    """The `loras:` settings of a library with one real peft LoRA, always picked at weight 0.8."""
    lora_dir = tmp_path / "loras"
    lf.make_peft_lora(tiny_pipe, lora_dir / "glow.safetensors", seed=3)
    library = tmp_path / "loras.yaml"
    library.write_text(yaml.safe_dump({"loras": {"glow": {
        "file": "glow.safetensors", "type": "style", "weight_range": [0.8, 0.8], "chance": 1.0,
        "trigger_words": ["glowstyle"]}}}))
    return {"file": str(library), "directory": str(lora_dir)}


def test_enhancement_applies_the_planned_lora_stack(paths_with_models: Paths, tmp_path: Path,
                                                    tiny_pipe: Any) -> None:
    from ai_wallpaper.config.render_settings import ModelSettings
    from ai_wallpaper.config.settings import settings_from_dict
    from ai_wallpaper.render.lora_apply import adapter_names, applied_loras
    from ai_wallpaper.render.model_loading import load_sdxl
    from ai_wallpaper.render.stages.enhance import EnhanceConfig, run_enhance

    settings = {**SMALL, "loras": glow_library(tiny_pipe, tmp_path)}
    out = tmp_path / "run"
    cfg_file = write_settings(paths_with_models, settings)
    assert main(["generate", "--config", str(cfg_file), "--no-wallpaper", "--save-stages", "--output", str(out)]) == 0

    record = json.loads((out / RUN_JSON).read_text())
    plan = Plan.from_json(record["plan"])
    assert [c.name for c in plan.loras] == ["glow"] and "glowstyle" in plan.prompt
    for stage in ("base", "enhanced"):
        entry = record["stages"][stage]
        assert entry["prompt"] == plan.prompt
        assert entry["loras"] == [{"name": "glow", "weight": 0.8, "sha256": plan.loras[0].sha256}]

    # The same enhancement by hand, on the upscaled image the run saved, with the stack applied...
    pipe = load_sdxl("builtin:tiny", "base", ModelSettings(device="cpu"), paths_with_models)
    e = SMALL["pipeline"]["enhance"]
    cfg = EnhanceConfig.from_settings(settings_from_dict(settings), prompt=plan.prompt,
                                      negative_prompt=plan.negative_prompt, seed=plan.seed)
    assert (cfg.tile, cfg.overlap, cfg.strength, cfg.steps) == (e["tile"], e["overlap"], e["strength"], e["steps"])
    with Image.open(out / STAGE_FILES["upscaled"]) as img:
        upscaled = img.convert("RGB")
    with applied_loras(pipe, plan.loras):
        by_hand = np.asarray(run_enhance(upscaled, pipe, cfg))
    without = np.asarray(run_enhance(upscaled, pipe, cfg))
    assert adapter_names(pipe) == set()
    with Image.open(out / STAGE_FILES["enhanced"]) as img:
        enhanced = np.asarray(img.convert("RGB"))
    # ... equals the pipeline's, and differs from an enhancement without the stack.
    assert np.array_equal(enhanced, by_hand)
    assert np.abs(enhanced.astype(np.int16) - without.astype(np.int16)).mean() > 0.5


def test_the_refiner_runs_without_loras_and_without_their_trigger_words(paths_with_models: Paths, tmp_path: Path,
                                                                       tiny_pipe: Any) -> None:
    settings = {**SMALL, "models": {**SMALL["models"], "refiner": "builtin:tiny-refiner"},
                "pipeline": {**SMALL["pipeline"], "enhance": {"enabled": False}},
                "loras": glow_library(tiny_pipe, tmp_path)}
    out = tmp_path / "run"
    cfg_file = write_settings(paths_with_models, settings)
    assert main(["generate", "--config", str(cfg_file), "--no-wallpaper", "--output", str(out)]) == 0

    record = json.loads((out / RUN_JSON).read_text())
    plan = Plan.from_json(record["plan"])
    assert record["stages"]["base"]["prompt"] == plan.prompt and "glowstyle" in plan.prompt
    refined = record["stages"]["refined"]
    assert refined["status"] == "done" and refined["loras"] == []
    assert refined["prompt"] == plan.refiner_prompt == SMALL["prompt"]  # the same text, minus the trigger
