"""`python -m bench.work`: the exact work of the default run, counted in seconds without running it.

Every default is read from `ai_wallpaper.config.settings.Settings()`; the UNet calls per tile come from
the product's own schedulers (`len(timesteps)`), our enhancement tiles from
`render.quality.enhance_tiles`, the upscaler crops from the tiler's rules and the VAE tiles from
diffusers' (bench/work_counts.py). FLOPs are counted per distinct input shape on the meta device
(bench/work_counts.py says what a "FLOP" is). The peers, Ultimate SD Upscale and Tiled Diffusion, are
modelled job by job from their sources (bench/work_usdu.py) on the same upscaled image with the same
steps and strength. The last line compares the UNet work: their UNet FLOPs / ours.

    .venv/bin/python -m bench.work [--json] [--tile 1024 --overlap 256] [--size 1920x1024]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

from bench.common import enhance_config, format_table, parse_size
from bench.work_counts import MetaModels, Shape, Work, diffusers_vae_tiles, downsample_flops, upscaler_crops
from bench.work_usdu import TILE_EQ, Method, img2img_steps, tiled_diffusion_methods, usdu_methods

NATIVE_TILE = 1024  # SDXL's training size: the USDU tile compared against; its own default (512) is printed too


@dataclass(frozen=True)
class Plan:
    """What the run does, from the settings: sizes (h, w), UNet calls per branch, CFG branches, tiles."""

    base: Shape
    scale: int
    final: Shape
    anchor: str
    txt2img_calls: int
    txt2img_cfg: int
    enhance: bool
    tile: int
    overlap: int
    steps: int
    strength: float
    enhance_calls: int
    enhance_cfg: int
    up_tile: int
    up_overlap: int
    vae_tiling: Any

    @property
    def big(self) -> Shape:
        return self.base[0] * self.scale, self.base[1] * self.scale


def make_plan(models: MetaModels, settings: Any, size: Shape | None, tile: int | None, overlap: int | None) -> Plan:
    import torch

    from ai_wallpaper.render.stages.enhance_denoise import img2img_timesteps
    from ai_wallpaper.render.stages.schedulers import make_scheduler

    t, e, u = settings.pipeline.txt2img, settings.pipeline.enhance, settings.pipeline.upscale
    # UNet calls = len(timesteps): the diffusers loops call the UNet once per timestep (a second-order
    # sampler lists its timesteps twice), so this is exact for any configured sampler.
    scheduler = make_scheduler(t.scheduler, models.scheduler_config)
    scheduler.set_timesteps(t.steps)
    enhance_scheduler = make_scheduler(e.scheduler or t.scheduler, models.scheduler_config)
    enhance_calls = len(img2img_timesteps(enhance_scheduler, e.steps, e.strength, torch.device("cpu")))
    o = settings.output
    tile, overlap = tile or e.tile, e.overlap if overlap is None else overlap
    enhance_config("work accounting", tile=tile, overlap=overlap)  # the product's checks: ValueError if refused
    return Plan(base=size or (t.height, t.width), scale=o.upscale_factor, final=(o.height, o.width),
                anchor=o.anchor, txt2img_calls=len(scheduler.timesteps), txt2img_cfg=2 if t.guidance_scale > 1 else 1,
                enhance=e.enabled, tile=tile, overlap=overlap,
                steps=e.steps, strength=e.strength, enhance_calls=enhance_calls,
                enhance_cfg=2 if e.guidance_scale > 1 else 1,
                up_tile=_upscale_tile(u.tile, size or (t.height, t.width)), up_overlap=u.overlap,
                vae_tiling=settings.models.memory.vae_tiling)



def _upscale_tile(tile: int | str, base: tuple[int, int]) -> int:
    """pipeline.upscale.tile; auto counted as the one whole pass it is wherever the image fits half the
    free memory (a 24 GB+ GPU at 1920x1024 x4; stages/upscale.py tile_for_memory)."""
    return tile if isinstance(tile, int) else max(base)

def _mpx(shapes: list[Shape], unit: int = 1) -> float:
    return sum(h * w for h, w in shapes) * unit * unit / 1e6


def vae_shapes(models: MetaModels, plan: Plan, size: Shape, latent: bool) -> tuple[list[Shape], str]:
    """Whole, or diffusers' tiles at VAE_TILE_PX when models.memory.vae_tiling wants it for this size
    (render/stages/vae.py sets the tile size whenever it tiles); and a note saying which."""
    from ai_wallpaper.render.devices import VAE_TILE_PX, wants_vae_tiling

    s = models.vae_scale
    shape = (size[0] // s, size[1] // s) if latent else size
    if not wants_vae_tiling(plan.vae_tiling, size[0] * size[1]):
        return [shape], f"whole (models.memory.vae_tiling {plan.vae_tiling})"
    shapes = diffusers_vae_tiles(models, shape[0], shape[1], VAE_TILE_PX // s if latent else VAE_TILE_PX)
    stride = int(VAE_TILE_PX * (1 - models.sdxl_vae.tile_overlap_factor))
    return shapes, f"diffusers tiles: {VAE_TILE_PX} px every {stride} px, edge tiles clipped"


def our_run(models: MetaModels, plan: Plan) -> tuple[list[Work], float, Method | None]:
    """The run's stages as Work rows, the untiled upscaler's FLOPs, and our enhancement as a Method."""
    from ai_wallpaper.render.quality import enhance_tiles

    s, (h, w), (bh, bw) = models.vae_scale, plan.base, plan.big
    rows = []
    encodes = 2 if plan.enhance else 1  # txt2img and the enhancement each encode the prompt once
    for index, (name, per) in enumerate((("CLIP-L", 2), ("OpenCLIP-bigG", 4))):
        n = per * encodes
        rows.append(Work("text encoders", name, n, 0.0, n, models.text_encoder(index) * n,
                         f"{per} x 77 tokens per encoding (prompt, negative{', both again pooled' if per == 4 else ''})"
                         f" x {encodes} encodings"))
    evals = plan.txt2img_calls * plan.txt2img_cfg
    rows.append(Work("txt2img", "UNet", 1, h * w / 1e6, evals, models.unet((h // s, w // s)) * evals,
                     f"{plan.txt2img_calls} steps x {plan.txt2img_cfg} (CFG) at latent {w // s}x{h // s} (WxH)"))
    dec, note = vae_shapes(models, plan, (h, w), latent=True)
    rows.append(Work("txt2img", "VAE decode", len(dec), _mpx(dec, s), len(dec), models.total(models.vae_decode, dec),
                     note))
    crops, tile, margin = upscaler_crops(models, h, w, plan.up_tile, plan.up_overlap)
    untiled = float(models.upscaler((h, w)))
    rows.append(Work("upscale", "RRDBNet x4", len(crops), _mpx(crops), len(crops),
                     models.total(models.upscaler, crops),
                     f"tile {tile} + {margin} px context, clipped; untiled one pass {untiled / 1e12:.1f} TFLOP"))
    ours = None
    if plan.enhance:
        (enc, enc_note), (dec, dec_note) = (vae_shapes(models, plan, (bh, bw), latent=latent)
                                            for latent in (False, True))
        boxes = enhance_tiles(bw, bh, plan.tile, plan.overlap, s)
        tiles = [(b.h // s, b.w // s) for b in boxes]
        evals = len(tiles) * plan.enhance_calls * plan.enhance_cfg
        unet = models.total(models.unet, tiles) * plan.enhance_calls * plan.enhance_cfg
        vae_enc, vae_dec = models.total(models.vae_encode, enc), models.total(models.vae_decode, dec)
        rows += [Work("enhance", "VAE encode", len(enc), _mpx(enc), len(enc), vae_enc, enc_note),
                 Work("enhance", "UNet", len(tiles), _mpx(tiles, s), evals, unet,
                      f"{len(tiles)} tiles x {plan.enhance_calls} steps x {plan.enhance_cfg} (CFG)"),
                 Work("enhance", "VAE decode", len(dec), _mpx(dec, s), len(dec), vae_dec, dec_note)]
        area = sum(b.h * b.w for b in boxes) * plan.enhance_calls
        ours = Method(f"ours {plan.tile}/{plan.overlap}", len(boxes), area / (TILE_EQ * ref_steps(plan)),
                      evals, unet, vae_enc + vae_dec, f"{len(boxes)} tiles per step ({plan.enhance_calls} st)")
    lanczos = downsample_flops((bh, bw), plan.final, plan.anchor)
    rows.append(Work("downsample", "Lanczos (Pillow)", 1, bh * bw / 1e6, 1, lanczos,
                     f"~{lanczos / 1e9:.0f} GFLOP estimated (not a torch op): negligible"))
    return rows, untiled, ours


def ref_steps(plan: Plan) -> int:
    """int(steps x strength): the denoising steps per tile that every method is compared at."""
    return img2img_steps(plan.steps, plan.strength)


def peers(models: MetaModels, plan: Plan) -> list[Method]:
    (bh, bw), ref = plan.big, ref_steps(plan)
    args = (plan.steps, plan.strength, plan.enhance_cfg, ref)
    return [*usdu_methods(models, bw, bh, NATIVE_TILE, *args), *usdu_methods(models, bw, bh, 512, *args),
            *tiled_diffusion_methods(models, bw, bh, *args)]


def summary_line(ours: Method, others: list[Method]) -> str:
    by_name = {m.name: m for m in others}
    band = by_name[f"USDU {NATIVE_TILE} band pass"].unet_flops / ours.unet_flops
    half = by_name[f"USDU {NATIVE_TILE} half tile"].unet_flops / ours.unet_flops
    return f"ours vs USDU band pass: {band:.2f}x, vs USDU half tile: {half:.2f}x less UNet work"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.work", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="machine-readable output (then the summary line)")
    parser.add_argument("--tile", type=int, help="our enhancement tile (default: pipeline.enhance.tile)")
    parser.add_argument("--overlap", type=int, help="our enhancement overlap (default: pipeline.enhance.overlap)")
    parser.add_argument("--size", type=parse_size, help="base (txt2img) size WxH (default: pipeline.txt2img)")
    args = parser.parse_args(argv)
    from ai_wallpaper.config.settings import Settings

    started = time.perf_counter()
    models = MetaModels()
    size = (args.size[1], args.size[0]) if args.size else None
    try:
        plan = make_plan(models, Settings(), size, args.tile, args.overlap)
        rows, untiled, ours = our_run(models, plan)
    except ValueError as err:  # a tile/overlap/size the product's checks or the tiler refuse
        parser.error(str(err))
    if ours is None or ref_steps(plan) == 0:
        parser.error("no enhancement to compare (pipeline.enhance.enabled false, or int(steps x strength) is 0)")
    others = peers(models, plan)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps(to_json(plan, rows, untiled, ours, others, seconds), indent=1))
    else:
        print(report(plan, rows, untiled, ours, others, seconds))
    print(summary_line(ours, others))
    return 0


def report(plan: Plan, rows: list[Work], untiled: float, ours: Method, others: list[Method], seconds: float) -> str:
    (h, w), (bh, bw), (fh, fw), ref = plan.base, plan.big, plan.final, ref_steps(plan)
    total = sum(r.flops for r in rows)
    stage_rows = [[r.stage, r.model, r.tiles, r.mpx, r.evals, r.flops / 1e12, 100 * r.flops / total, r.note]
                  for r in rows]
    methods = [[m.name, m.jobs, m.tile_eq, m.unet_evals, m.unet_flops / 1e12,
                None if m.vae_flops is None else m.vae_flops / 1e12, f"{m.unet_flops / ours.unet_flops:.2f}x", m.note]
               for m in (ours, *others)]
    a1111 = (ref + 1) / ref
    by_name = {m.name: m.unet_flops / ours.unet_flops for m in others}
    return "\n".join([
        f"# Work of the default run: {w}x{h} -> {bw}x{bh} -> {fw}x{fh} (counted on the meta device in {seconds:.1f} s)",
        "",
        "FLOP = what torch.utils.flop_counter.FlopCounterMode counts: 2 per multiply-add of matmuls, convolutions",
        "and attention; bias, norms, activations, softmax not counted. evaluations = model calls at batch 1 (a CFG",
        "pair = 2). Mpx/pass = image pixels the model covers per pass, overlaps counted each time (latents in image",
        "pixels).",
        "",
        format_table(["stage", "model", "tiles", "Mpx/pass", "evaluations", "TFLOP", "share %", "note"], stage_rows),
        "",
        f"Total: {total / 1e15:.2f} PFLOP. The upscaler untiled would be {untiled / 1e12:.1f} TFLOP; the final "
        "downsample is negligible.",
        "",
        f"## The enhancement, ours vs the peers, on the same {bw}x{bh} image",
        "",
        format_table(["method", "jobs", "tile-eq/step", "UNet evals", "UNet TFLOP", "VAE TFLOP", "UNet vs ours",
                      "jobs: count x WxH (denoising steps)"], methods),
        "",
        f"Every method: {plan.steps} steps x strength {plan.strength} = {ref} denoising steps per tile (USDU's seam",
        "passes: its seams_fix_denoise 0.35), a CFG pair per step. tile-eq/step = processed area x steps /",
        f"(1024^2 x {ref}). UNet vs ours = their UNet FLOPs / ours (< 1: we do more). USDU VAE = each job encodes",
        "its crop and decodes its result whole; Tiled Diffusion's VAE is not modelled (A1111's whole-image VAE",
        "or the extension's own Tiled VAE).",
        f"USDU is compared at tile {NATIVE_TILE}: SDXL's native size (its training resolution; our tiles are 1024",
        "too). Its default, 512, is SD 1.5's native size, too small for SDXL; those rows are printed as well.",
        f"Inside A1111 each img2img runs t_enc + 1 = {ref + 1} sampler steps (setup_img2img_steps; sigmas[steps -",
        f"t_enc - 1:]), so there the peers' UNet work is {a1111:.2f}x the above: USDU band pass "
        f"{by_name[f'USDU {NATIVE_TILE} band pass'] * a1111:.2f}x, half tile "
        f"{by_name[f'USDU {NATIVE_TILE} half tile'] * a1111:.2f}x ours.",
    ])


def unet_ratios(size: Shape | None = None, tile: int | None = None, overlap: int | None = None) -> dict[str, float]:
    """Each peer's enhancement UNet FLOPs over ours, for the default settings (bench/gpu_quick.py)."""
    from ai_wallpaper.config.settings import Settings

    models = MetaModels()
    plan = make_plan(models, Settings(), size, tile, overlap)
    ours = our_run(models, plan)[2]
    if ours is None:
        return {}
    return {m.name: m.unet_flops / ours.unet_flops for m in peers(models, plan)}


def to_json(plan: Plan, rows: list[Work], untiled: float, ours: Method, others: list[Method],
            seconds: float) -> dict[str, Any]:
    total = sum(r.flops for r in rows)
    return {"plan": {**plan.__dict__, "big": plan.big, "reference_steps": ref_steps(plan)},
            "stages": [r.to_json() for r in rows], "total_pflop": round(total / 1e15, 4),
            "upscaler_untiled_tflop": round(untiled / 1e12, 3),
            "enhancement": [m.to_json() for m in (ours, *others)],
            "vs_ours_unet": {m.name: round(m.unet_flops / ours.unet_flops, 4) for m in others},
            "seconds": round(seconds, 2)}


if __name__ == "__main__":
    raise SystemExit(main())
