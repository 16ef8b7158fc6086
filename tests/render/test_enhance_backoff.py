"""The enhancement survives out of memory: smaller batches, then smaller tiles, from the same seeded
start, so the result equals a run configured with what it fell back to; every choice is recorded, and a
resumed run repeats it. The out-of-memory errors are raised by a denoiser wrapper (no CUDA here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from ai_wallpaper.core.errors import RunError
from ai_wallpaper.render.run_record import record_problems
from ai_wallpaper.render.stages import enhance_backoff
from ai_wallpaper.render.stages.enhance import run_enhance
from ai_wallpaper.render.stages.tiling import TileBox
from tests.render.test_enhance import config, smooth_image


def tiles_denoiser(fits: Any) -> Any:
    """A cheap deterministic 'UNet' that runs out of memory whenever fits(tiles) is False."""
    def denoise(sample: torch.Tensor, t: torch.Tensor, boxes: Sequence[TileBox]) -> torch.Tensor:
        if not fits(sample):
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return torch.tanh(sample * 0.3 + float(t) / 1000)
    return denoise


def test_out_of_memory_halves_the_batch_and_equals_a_batch_1_run(tiny_pipe: Any) -> None:
    image = smooth_image(512, 256)
    decisions: list[dict[str, Any]] = []
    fallen = run_enhance(image, tiny_pipe, config(batch_size=4, strength=0.5),
                         denoiser=tiles_denoiser(lambda s: s.shape[0] == 1), on_decision=decisions.append)
    direct = run_enhance(image, tiny_pipe, config(batch_size=1, strength=0.5),
                         denoiser=tiles_denoiser(lambda s: True))
    assert np.array_equal(np.asarray(fallen), np.asarray(direct))
    assert [d["batch_size"] for d in decisions] == [4, 2, 1]
    assert decisions[-1]["backoffs"] == ["out of memory at batch 4: batch 2", "out of memory at batch 2: batch 1"]


def test_then_smaller_tiles_laid_out_like_the_normal_path(tiny_pipe: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enhance_backoff, "MIN_TILE_PX", 128)  # the tiny model's sizes, not SDXL's
    image = smooth_image(512, 256)
    decisions: list[dict[str, Any]] = []
    small_tiles = tiles_denoiser(lambda s: s.shape[-1] * 8 <= 128)
    fallen = run_enhance(image, tiny_pipe, config(batch_size=1, tile=256, overlap=64, strength=0.5),
                         denoiser=small_tiles, on_decision=decisions.append)
    direct = run_enhance(image, tiny_pipe, config(batch_size=1, tile=128, overlap=64, strength=0.5),
                         denoiser=small_tiles)
    assert np.array_equal(np.asarray(fallen), np.asarray(direct))
    # The minimum overlap is a blend width in pixels: it stays when the tile halves.
    assert (decisions[-1]["tile"], decisions[-1]["overlap"]) == (128, 64)
    assert decisions[-1]["backoffs"] == ["out of memory with 256 px tiles: 128 px tiles"]


def test_out_of_memory_at_the_smallest_tile_is_a_run_error(tiny_pipe: Any) -> None:
    with pytest.raises(RunError, match="ran out of memory even with one 256 px tile per call"):
        run_enhance(smooth_image(512, 256), tiny_pipe, config(batch_size=1, strength=0.5),
                    denoiser=tiles_denoiser(lambda s: False))


def test_a_resumed_run_reads_only_sane_decisions() -> None:
    from tests.render.test_run_dir import RUN_ID, make_plan

    record = {"run_id": RUN_ID, "status": "running", "plan": make_plan().to_json(), "settings": {}, "stages": {}}
    assert record_problems({**record, "decisions": {"enhanced": {"batch_size": 2, "tile": 512, "overlap": 128}}},
                           "r") == []
    for bad in ({"batch_size": 0, "tile": 512, "overlap": 0}, {"batch_size": 1, "tile": "512", "overlap": 0},
                {"batch_size": 1, "tile": 10**9, "overlap": 0}, "all of them"):
        assert any("decisions.enhanced" in p for p in record_problems({**record, "decisions": {"enhanced": bad}}, "r"))


def test_the_pipeline_records_the_decision_and_resume_repeats_it(paths_with_models: Any, tmp_path: Any) -> None:
    import json

    from tests.render.test_pipeline import SMALL, generate

    out = tmp_path / "run"
    assert generate(paths_with_models, "--save-stages", "--output", str(out)) == 0
    record = json.loads((out / "run.json").read_text())
    decision = record["decisions"]["enhanced"]
    e = SMALL["pipeline"]["enhance"]
    assert (decision["tile"], decision["overlap"], decision["batch_size"]) == (e["tile"], e["overlap"], 1)
    assert record["stages"]["enhanced"]["enhance"] == decision
    # models.memory.vae_tiling auto: these small images go through the VAE whole (tiles leave tone steps)
    assert record["stages"]["base"]["vae"] == record["stages"]["enhanced"]["vae"] == "whole"
    # Resume after a (simulated) kill during the enhancement with a backoff already taken: it repeats it.
    for stage in ("enhanced", "final"):
        del record["stages"][stage]
    record["status"] = "running"
    record["decisions"]["enhanced"] = {**decision, "tile": 128, "overlap": 32, "backoffs": ["(simulated)"]}
    (out / "run.json").write_text(json.dumps(record))
    assert generate(paths_with_models, "--resume", str(out)) == 0
    resumed = json.loads((out / "run.json").read_text())
    assert resumed["stages"]["enhanced"]["enhance"]["tile"] == 128
