"""Smoke test of the benchmark scripts' cores at tiny sizes (the real runs are in bench/RESULTS.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench import random_models
from bench.common import (
    SpeedOptions,
    apply_bench_switches,
    enhance_config,
    format_table,
    load_models,
    sample_image,
)
from bench.enhance_vs_naive import compare
from bench.naive_usdu import owned_intervals, paste_mask
from bench.scaling import fit_line, run_scaling
from bench.stages import StageBench, run_stages, total_rows
from bench.work import main as work_main


@pytest.fixture(autouse=True)
def one_torch_thread() -> Any:
    """On a shared 2-core box, 2 OpenMP threads per process spin against other jobs and run these
    tiny models up to 100x slower (measured); one thread is steady."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("name", ["base", "refiner", "upscaler"])
def test_full_size_configs_have_the_public_parameter_counts(name: str) -> None:
    counts = random_models.count_parameters(name)  # meta device: no memory
    for key, count in counts.items():
        expected = random_models.EXPECTED_PARAMS.get(key) or random_models.EXPECTED_PARAMS[
            key.replace("refiner.", "base.")]
        assert count == expected, key


def test_stage_bench_runs_every_stage_and_reports_memory(tmp_path: Any) -> None:
    opts = SpeedOptions(batch_size=2)
    models = load_models("builtin", opts, "cpu", cache_dir=tmp_path)
    bench = StageBench(width=128, height=64, final_width=240, final_height=135, steps=2, enhance_steps=4,
                       tile=256, overlap=64, opts=opts)
    rows = list(models.rows)
    final = run_stages(bench, models, rows)
    assert final.size == (240, 135)
    names = [r.name for r in rows]
    assert names == ["load base", "load upscaler", "txt2img", "upscale", "enhance", "downsample",
                     "png writes"]
    assert all(r.seconds > 0 and r.peak_rss_mb > 100 and r.peak_cuda_mb is None for r in rows)
    totals = total_rows(rows)
    assert totals[0].seconds == pytest.approx(sum(r.seconds for r in rows[2:]))


def test_naive_usdu_and_ours_side_by_side(tiny_pipe: Any) -> None:
    image = sample_image(320, 128)
    cfg = enhance_config("a harbour", seed=3, tile=128, overlap=32, steps=4, strength=0.5, batch_size=2)
    result = compare(image, tiny_pipe, cfg, rounds=1)
    assert result.tiles == 3 and result.tile_evals == 6
    assert len(result.ours_seconds) == len(result.naive_seconds) == 1
    assert 0 < result.ours_seam < 10 and 0 < result.naive_seam < 10
    assert "speed-up (naive / ours, medians)" in result.table()
    # both really repaint (neither is a no-op) and keep the size
    for out in (result.ours_image, result.naive_image):
        assert out.size == image.size and out.tobytes() != image.tobytes()


def test_naive_paste_geometry_partitions_the_image() -> None:
    intervals = owned_intervals([0, 192, 256], 256, 512)
    assert intervals == [(0, 224), (224, 352), (352, 512)]
    from ai_wallpaper.render.stages.tiling import TileBox

    mask = paste_mask(TileBox(0, 0, 256, 256), (0, 224), (0, 256), 512, 512, blur=8)
    assert float(mask[0, 0, 0, 0]) == pytest.approx(1.0)  # image border: full weight, not feathered
    assert float(mask[0, 0, 255, 100]) < 1e-3  # interior side: faded out before the tile edge


def test_scaling_counts_tiles_and_fits_a_line(tiny_pipe: Any) -> None:
    rows = run_scaling(tiny_pipe, {"s": "320x128"}, [32, 64], tile=128, steps=4, strength=0.5, batch_size=1)
    assert [r.tiles for r in rows] == [3, 4]
    assert all(0 < r.unet_seconds < r.seconds for r in rows)
    assert fit_line([1, 2, 3], [2.0, 4.0, 6.0]) == pytest.approx((2.0, 0.0, 1.0))


def test_bench_switches_change_the_loaded_pipe(tiny_sdxl_dir: Any) -> None:
    from diffusers import StableDiffusionXLPipeline
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    pipe = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_dir))  # own copy: it is mutated
    apply_bench_switches(pipe, SpeedOptions(attention="classic", vae_fp16=True))
    assert {type(p) for p in pipe.unet.attn_processors.values()} == {AttnProcessor}
    assert pipe.vae.config.force_upcast is False
    apply_bench_switches(pipe, SpeedOptions(attention="sdpa"))
    assert {type(p) for p in pipe.unet.attn_processors.values()} == {AttnProcessor2_0}
    table = format_table(["a", "b"], [["x", 1.5], ["y", None]])
    assert table.splitlines()[2] == "| x | 1.50 |"


def test_work_accounting_prints_json_and_the_summary_line(capsys: Any) -> None:
    """bench.work on the meta device (~20 s, no real compute). The tile layout is being changed
    elsewhere, so only the structure, the positivity and the link to enhance_tiles are asserted."""
    from ai_wallpaper.render.quality import enhance_tiles

    assert work_main(["--json"]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    last = re.fullmatch(r"ours vs USDU band pass: (\d+\.\d\d)x, vs USDU half tile: (\d+\.\d\d)x less UNet work",
                        lines[-1])
    assert last is not None, lines[-1]
    assert float(last[1]) > 0 and float(last[2]) > 0
    data = json.loads("\n".join(lines[:-1]))
    stages = {(r["stage"], r["model"]): r for r in data["stages"]}
    for key in [("text encoders", "CLIP-L"), ("text encoders", "OpenCLIP-bigG"), ("txt2img", "UNet"),
                ("txt2img", "VAE decode"), ("upscale", "RRDBNet x4"), ("enhance", "VAE encode"),
                ("enhance", "UNet"), ("enhance", "VAE decode"), ("downsample", "Lanczos (Pillow)")]:
        assert stages[key]["flops"] > 0 and stages[key]["evals"] > 0, key
    plan = data["plan"]
    height, width = plan["big"]
    unet = stages[("enhance", "UNet")]
    assert unet["tiles"] == len(enhance_tiles(width, height, plan["tile"], plan["overlap"]))
    assert unet["evals"] == unet["tiles"] * plan["enhance_calls"] * plan["enhance_cfg"]
    assert data["total_pflop"] == pytest.approx(sum(r["flops"] for r in data["stages"]) / 1e15, abs=1e-3)
    assert data["upscaler_untiled_tflop"] > 0
    methods = {m["name"]: m for m in data["enhancement"]}
    assert data["enhancement"][0]["name"].startswith("ours")
    for name in ["USDU 1024 band pass", "USDU 1024 half tile", "USDU 512 none", "Tiled Diffusion 96/48"]:
        assert methods[name]["unet_tflop"] > 0 and methods[name]["tile_eq_per_step"] > 0, name
    assert data["vs_ours_unet"]["USDU 1024 band pass"] == pytest.approx(float(last[1]), abs=0.0051)


def test_carried_wheels_are_unpacked_after_the_machines_own_packages(tmp_path: Path) -> None:
    import sys
    import zipfile

    from bench import carried

    assert carried.activate(tmp_path / "none") is None
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "aiw_probe-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("aiw_probe/__init__.py", "VALUE = 42\n")
    before = list(sys.path)
    try:
        site = carried.activate(wheels)
        assert site is not None and sys.path[-1] == str(site) and sys.path[: len(before)] == before
        import aiw_probe  # type: ignore[import-not-found]

        assert aiw_probe.VALUE == 42
    finally:
        sys.path[:] = before
        sys.modules.pop("aiw_probe", None)
    with zipfile.ZipFile(wheels / "evil-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("../../escaped.py", "boom\n")
    with pytest.raises(SystemExit, match="outside the unpack folder"):
        carried.activate(wheels)
    assert not (tmp_path / "escaped.py").exists()


def test_monitor_cuts_prints_a_time_for_every_step(capsys: Any) -> None:
    from bench.monitor_cuts import DESK
    from bench.monitor_cuts import main as cuts_main

    cuts_main(["--repeat", "1"])
    out = capsys.readouterr().out
    for screen in DESK:
        assert re.search(rf"cut {screen.name} {screen.width}x{screen.height} from 7680x4096: \d+\.\d{{3}} s", out)
    assert re.search(r"spanning canvas \d+x2160 .*: \d+\.\d{3} s", out)
    assert re.search(r"night picture of 3840x2160: \d+\.\d{3} s", out)
