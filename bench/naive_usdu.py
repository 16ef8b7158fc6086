"""The common approach, for comparison: Ultimate-SD-Upscale-style per-tile pixel-space img2img.

What Ultimate SD Upscale (USDU, "Linear" mode, seams fix "None" = its default) does per tile, written
from its documented behaviour (no code copied):
- tiles are processed one at a time in row-major order, each cropped from the CURRENT image, so a
  tile sees the already repainted parts of its earlier neighbours;
- each tile runs a full img2img: VAE encode the crop (latent sampled from the posterior, as
  diffusers' img2img does), add noise for `strength`, denoise, VAE decode;
- the result is pasted back through a mask: the tile's own region (here: up to the middle of each
  overlap with a neighbour, image borders included), blurred with a Gaussian of `mask_blur` px
  (USDU's default 8); the pasted image is 8-bit, as USDU pastes PIL images;
- no seam-fix pass (USDU's default; a seam-fix pass would add more img2img work to the naive side).

For a like-for-like comparison everything else is shared with ours: the same tile boxes (our
`tile_grid`, tile and overlap), the same model and UNet call, the same private scheduler and
img2img timestep selection, the same steps, strength, CFG and seed, the prompt encoded once
(A1111 and ComfyUI cache the conditioning too), the VAE upcast to fp32 when it is not fp16-safe.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ai_wallpaper.render.stages.common import (
    CancelCheck,
    Progress,
    never_cancel,
    no_progress,
    pil_to_tensor,
    raise_if_cancelled,
    tensor_to_pil,
)
from ai_wallpaper.render.stages.enhance import EnhanceConfig
from ai_wallpaper.render.stages.enhance_denoise import (
    add_seeded_noise,
    encode_conditioning,
    fresh_scheduler,
    img2img_timesteps,
    unet_denoiser,
)
from ai_wallpaper.render.stages.tiling import TileBox, tile_grid, validate_tiling

if TYPE_CHECKING:
    import torch
    from PIL import Image

USDU_MASK_BLUR = 8  # USDU's default mask blur (px)


def owned_intervals(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """Per tile along one axis, the interval it pastes: from the middle of the overlap with the
    previous tile to the middle of the overlap with the next one (0 and `length` at the borders)."""
    cuts = [(nxt + cur + tile) // 2 for cur, nxt in itertools.pairwise(starts)]
    bounds = [0, *cuts, length]
    return [(bounds[i], bounds[i + 1]) for i in range(len(starts))]


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    import torch

    radius = max(1, int(3 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def paste_mask(box: TileBox, own_y: tuple[int, int], own_x: tuple[int, int], height: int, width: int,
               blur: float) -> torch.Tensor:
    """(1, 1, h, w) mask of the tile's own region, Gaussian-blurred; at image borders the region
    is extended past the edge before blurring (replicate), so image borders get full weight."""
    import torch

    mask = torch.zeros(1, 1, box.h, box.w)
    mask[..., own_y[0] - box.y:own_y[1] - box.y, own_x[0] - box.x:own_x[1] - box.x] = 1.0
    if blur <= 0:
        return mask
    k = _gaussian_kernel(blur)
    pad = k.numel() // 2
    # replicate padding: past the image border the mask continues (1 where the region touches it);
    # past an interior tile edge it is already 0 (the region ends overlap/2 inside the tile).
    padded = torch.nn.functional.pad(mask, (pad, pad, pad, pad), mode="replicate")
    padded = torch.nn.functional.conv2d(padded, k.view(1, 1, 1, -1))
    padded = torch.nn.functional.conv2d(padded, k.view(1, 1, -1, 1))
    return padded


@contextmanager
def _vae_precision(vae: Any) -> Iterator[torch.dtype]:
    """As diffusers' img2img: an fp16 VAE that is not fp16-safe runs in fp32 (tiling left as loaded)."""
    import torch

    old = vae.dtype
    upcast = old == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
    if upcast:
        vae.to(dtype=torch.float32)
    try:
        yield vae.dtype
    finally:
        if upcast:
            vae.to(dtype=old)


def run_naive_usdu(image: Image.Image, pipe: Any, cfg: EnhanceConfig, progress: Progress = no_progress,
                   cancel: CancelCheck = never_cancel, *, mask_blur: float = USDU_MASK_BLUR) -> Image.Image:
    """Enhance `image` tile by tile in pixel space (see the module docstring)."""
    import torch
    from diffusers.pipelines.stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img import retrieve_latents

    # 1. Same geometry, conditioning and step selection as ours.
    image = image.convert("RGB")
    width, height = image.size
    validate_tiling(height, width, cfg.tile, cfg.overlap, int(pipe.vae_scale_factor))
    boxes = tile_grid(height, width, cfg.tile, cfg.overlap)
    ys = sorted({b.y for b in boxes})
    xs = sorted({b.x for b in boxes})
    own_y = dict(zip(ys, owned_intervals(ys, cfg.tile, height), strict=True))
    own_x = dict(zip(xs, owned_intervals(xs, cfg.tile, width), strict=True))
    device = pipe._execution_device
    cond = encode_conditioning(pipe, cfg.prompt, cfg.negative_prompt, cfg.guidance_scale, (cfg.tile, cfg.tile), device)
    denoise = unet_denoiser(pipe.unet, cond)
    vae = pipe.vae
    current = pil_to_tensor(image)  # (1, 3, H, W) in [0, 1], CPU: the image being repainted
    total = len(boxes) * max(1, cfg.steps_to_run)
    done = 0
    with torch.inference_mode():
        for box in boxes:
            raise_if_cancelled(cancel)
            crop = current[(..., *box.slices())]
            generator = torch.Generator("cpu").manual_seed(cfg.seed)  # A1111: every tile uses the seed
            # 2. VAE encode this tile (sampled latent, like diffusers' img2img)
            with _vae_precision(vae) as dtype:
                pixels = (crop * 2.0 - 1.0).to(device=device, dtype=dtype)
                latents = retrieve_latents(vae.encode(pixels), generator=generator).float()
            latents = latents * vae.config.scaling_factor
            # 3. img2img denoise of this one tile (batch 1, CFG doubles it), private scheduler
            scheduler = fresh_scheduler(pipe, cfg.scheduler)  # the sampler the product uses
            timesteps = img2img_timesteps(scheduler, cfg.steps, cfg.strength, device)
            latents = add_seeded_noise(scheduler, latents, timesteps[:1], generator)
            latent_box = [TileBox(0, 0, latents.shape[-2], latents.shape[-1])]
            for t in timesteps:
                model_input = scheduler.scale_model_input(latents, t)
                pred = denoise(model_input, t, latent_box).float()
                latents = scheduler.step(pred, t, latents, return_dict=False)[0].float()
                done += 1
                progress(done, total)
            # 4. VAE decode this tile
            with _vae_precision(vae) as dtype:
                out = vae.decode((latents / vae.config.scaling_factor).to(dtype)).sample.float().cpu()
            out = (out / 2.0 + 0.5).clamp(0, 1)
            out = torch.round(out * 255.0) / 255.0  # USDU pastes 8-bit PIL tiles
            # 5. paste through the blurred mask of the tile's own region
            mask = paste_mask(box, own_y[box.y], own_x[box.x], height, width, mask_blur)
            current[(..., *box.slices())] = mask * out + (1.0 - mask) * crop
    return tensor_to_pil(current)
