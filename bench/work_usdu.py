"""The peers' enhancement work on the same upscaled image, modelled job by job from their sources.

Ultimate SD Upscale: Coyote-A/ultimate-upscale-for-automatic1111 @ 2322caa,
scripts/ultimate-upscale.py (line numbers below). Its defaults (ui(), 462-473): redraw "Linear",
tile_width 512 (tile_height 0 = the same, 32-33), mask_blur 8, padding 32, seams fix "None",
seams_fix_denoise 0.35, seams_fix_width 64, seams_fix_mask_blur 4, seams_fix_padding 16. Grid:
rows = ceil(H / tile), cols = ceil(W / tile) (39-40), tiles do not overlap (calc_rectangle, 163-169).
Every job is one full AUTOMATIC1111 img2img "inpaint only masked" call (processing.process_images):
the mask's box plus blur spread plus padding is cropped, widened to the job's aspect and resized to
p.width x p.height (A1111 processing.py, inpaint_full_res), then VAE encode, int(steps x denoise)
sampler steps with a CFG pair each, VAE decode. What sets p.width x p.height:
- redraw (171-189): ceil((tile + padding) / 64) * 64 square (init_draw, 157-158): 1088 at tile 1024;
- band pass (354-406, called with rows/cols swapped at 410, so the counts are right): cols - 1
  vertical strips of (seams_fix_width + 2 seams_fix_padding) x H and rows - 1 horizontal strips of
  W x that (373-374, 388-389), denoise seams_fix_denoise (359);
- half tile (256-316): rows (cols - 1) + (rows - 1) cols jobs of exactly tile x tile (281-282, 298-299:
  no padding round-up), denoise seams_fix_denoise (274);
- half tile + intersections (318-352): the half-tile jobs plus (rows - 1)(cols - 1) tile x tile (333-334).
The job counts agree with its own calc_jobs_count (107-117).

Tiled Diffusion ("MultiDiffusion upscaler"): pkuliyi2015/multidiffusion-upscaler-for-automatic1111 @
22798f6. UI defaults (scripts/tilediffusion.py 127-132): latent tile 96 x 96, overlap `48 if is_t2i
else 8`, tile batch 4. `is_t2i` is the string 'true'/'false' (line 100, meant for JavaScript), so it
is always truthy and the img2img tab gets 48 too (and Method MultiDiffusion, line 120): 48 is what
a user gets, 8 is what was intended; both are printed. Tiles: init_grid_bbox (tile_methods/
abstractdiffusion.py 173-186) + split_bboxes (tile_utils/utils.py 160-177); every tile of every step
is one UNet call per CFG branch. The tile batch only groups calls: no change in FLOPs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.work_counts import MetaModels, Shape

TILE_EQ = 1024 * 1024  # one SDXL-native tile, the unit of "tile-equivalents"
USDU_PADDING, USDU_MASK_BLUR = 32, 8
USDU_SEAMS_DENOISE, USDU_SEAMS_WIDTH, USDU_SEAMS_MASK_BLUR, USDU_SEAMS_PADDING = 0.35, 64, 4, 16
USDU_MODES = ("none", "band pass", "half tile", "half tile + intersections")
TD_TILE, TD_OVERLAP_EFFECTIVE, TD_OVERLAP_INTENDED, TD_BATCH = 96, 48, 8, 4


@dataclass(frozen=True)
class Job:
    """`count` equal img2img jobs (or, for tiled denoisers, tiles per step) at `shape` image pixels."""

    shape: Shape
    count: int
    steps: int  # denoising steps each: sampler steps x evaluations per step (1 for DPM++ 2M)


@dataclass(frozen=True)
class Method:
    name: str
    jobs: int  # img2img jobs (USDU) or tiles per step (ours, Tiled Diffusion)
    tile_eq: float  # sum over jobs of area x steps / (1024^2 x reference steps): tiles of 1024^2 per step
    unet_evals: int  # a CFG pair counts 2
    unet_flops: float
    vae_flops: float | None  # None: not modelled
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "jobs": self.jobs, "tile_eq_per_step": round(self.tile_eq, 3),
                "unet_evals": self.unet_evals, "unet_tflop": round(self.unet_flops / 1e12, 3),
                "vae_tflop": None if self.vae_flops is None else round(self.vae_flops / 1e12, 3),
                "note": self.note}


def img2img_steps(steps: int, denoise: float) -> int:
    """A1111's t_enc = int(min(denoise, 0.999) * steps) (sd_samplers_common.setup_img2img_steps)."""
    return int(min(denoise, 0.999) * steps)


def usdu_jobs(width: int, height: int, tile: int, mode: str, steps: int, denoise: float) -> list[Job]:
    """USDU's jobs at `tile` for seams-fix `mode` (one of USDU_MODES), in processing order."""
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)
    redraw = math.ceil((tile + USDU_PADDING) / 64) * 64
    jobs = [Job((redraw, redraw), rows * cols, img2img_steps(steps, denoise))]
    seam_steps = img2img_steps(steps, USDU_SEAMS_DENOISE)
    if mode == "band pass":
        band = USDU_SEAMS_WIDTH + 2 * USDU_SEAMS_PADDING
        jobs += [Job((height, band), cols - 1, seam_steps), Job((band, width), rows - 1, seam_steps)]
    elif mode in ("half tile", "half tile + intersections"):
        jobs.append(Job((tile, tile), rows * (cols - 1) + (rows - 1) * cols, seam_steps))
        if mode == "half tile + intersections":
            jobs.append(Job((tile, tile), (rows - 1) * (cols - 1), seam_steps))
    elif mode != "none":
        raise ValueError(f"unknown seams fix mode {mode!r}")
    return [job for job in jobs if job.count > 0]


def tiled_diffusion_tiles(width: int, height: int, scale: int, tile: int, overlap: int) -> tuple[Shape, int]:
    """(tile shape in image px, tiles per step) of Tiled Diffusion's grid on the latent."""
    w, h = width // scale, height // scale
    tile_w, tile_h = min(tile, w), min(tile, h)
    overlap = max(0, min(overlap, tile - 4))  # init_grid_bbox clamps with the unclamped tile size
    cols = math.ceil((w - overlap) / (tile_w - overlap))
    rows = math.ceil((h - overlap) / (tile_h - overlap))
    return (tile_h * scale, tile_w * scale), rows * cols


def method_work(models: MetaModels, name: str, jobs: list[Job], cfg: int, ref_steps: int, *,
                per_job_vae: bool, note: str = "") -> Method:
    """UNet (and, per job, VAE) work of `jobs`; `cfg` evaluations per denoising step (2 = CFG pair)."""
    scale = models.vae_scale
    unet = sum(models.unet((j.shape[0] // scale, j.shape[1] // scale)) * j.count * j.steps * cfg for j in jobs)
    area = sum(j.shape[0] * j.shape[1] * j.count * j.steps for j in jobs)
    vae = None
    if per_job_vae:  # each A1111 job encodes its crop and decodes its result, whole (no tiled VAE)
        vae = sum((models.vae_encode(j.shape) + models.vae_decode((j.shape[0] // scale, j.shape[1] // scale)))
                  * j.count for j in jobs)
    return Method(name, sum(j.count for j in jobs), area / (TILE_EQ * ref_steps),
                  sum(j.count * j.steps * cfg for j in jobs), unet, vae, note)


def usdu_methods(models: MetaModels, width: int, height: int, tile: int, steps: int, strength: float,
                 cfg: int, ref_steps: int) -> list[Method]:
    out = []
    for mode in USDU_MODES:
        jobs = usdu_jobs(width, height, tile, mode, steps, strength)
        shapes = ", ".join(f"{j.count} x {j.shape[1]}x{j.shape[0]} ({j.steps} st)" for j in jobs)
        out.append(method_work(models, f"USDU {tile} {mode}", jobs, cfg, ref_steps, per_job_vae=True,
                               note=shapes))
    return out


def tiled_diffusion_methods(models: MetaModels, width: int, height: int, steps: int, strength: float,
                            cfg: int, ref_steps: int) -> list[Method]:
    out = []
    for overlap, why in ((TD_OVERLAP_EFFECTIVE, "UI default as shipped"),
                         (TD_OVERLAP_INTENDED, "intended img2img default")):
        shape, count = tiled_diffusion_tiles(width, height, models.vae_scale, TD_TILE, overlap)
        jobs = [Job(shape, count, img2img_steps(steps, strength))]
        out.append(method_work(models, f"Tiled Diffusion {TD_TILE}/{overlap}", jobs, cfg, ref_steps,
                               per_job_vae=False,
                               note=f"{count} x {shape[1]}x{shape[0]} per step, {why}; batch {TD_BATCH}"))
    return out
