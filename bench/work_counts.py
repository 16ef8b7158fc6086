"""FLOPs per model call of the full-size models, counted on the meta device, and the crops our run feeds them.

`MetaModels` builds the SDXL base 1.0 UNet, VAE and both text encoders and RealESRGAN_x4plus's RRDBNet
from bench/configs on the meta device (no weights in memory, no arithmetic done) and counts one call
per distinct input shape with `torch.utils.flop_counter.FlopCounterMode`, cached by shape: 50 equal
tiles cost one count. Every count is for batch 1; the counter's formulas are linear in the batch,
so a CFG pair is exactly 2 evaluations.

A "FLOP" is what the counter counts: 2 per multiply-add of matmuls (mm/addmm/bmm), convolutions and
attention (on the meta device SDPA runs as its math decomposition, two bmm's); bias adds, norms,
activations and softmax are not counted. The geometry helpers below mirror the code that cuts the
images: our upscaler tiler (render/stages/upscale.py `_tiled_pass`) and diffusers' tiled VAE
(AutoencoderKL `_tiled_encode` / `tiled_decode`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

Shape = tuple[int, int]  # (height, width), in the unit the model takes (pixels or latent cells)


@dataclass(frozen=True)
class Work:
    """One model's share of a stage: `tiles` crops per pass covering `mpx` megapixels of image (UNet
    and VAE latents counted in image pixels), `evals` model calls in all (a CFG pair counts 2)."""

    stage: str
    model: str
    tiles: int
    mpx: float
    evals: int
    flops: float
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tflop": round(self.flops / 1e12, 3), "mpx": round(self.mpx, 3)}


class MetaModels:
    """The full-size modules on the meta device and their FLOPs per input shape (batch 1)."""

    def __init__(self) -> None:
        from bench.random_models import build_esrgan_module, build_sdxl_components, build_upscaler

        parts = build_sdxl_components("base", "meta")
        self.sdxl_unet, self.sdxl_vae = parts["unet"], parts["vae"]
        self.text_encoders = [parts["text_encoder"], parts["text_encoder_2"]]
        self.scheduler_config = parts["scheduler"].config
        self.rrdb = build_esrgan_module("meta")
        # The size rules (pad-to-multiple, minimum) come from spandrel's descriptor, which needs real
        # tensors: the 67 MB RRDBNet is built once on the CPU for them, and never run.
        self.upscaler_requirements = build_upscaler("cpu", half=False).size_requirements
        self.vae_scale = 2 ** (len(self.sdxl_vae.config.block_out_channels) - 1)
        self.tokens = int(self.text_encoders[1].config.max_position_embeddings)  # CLIP's 77-token window
        self._cache: dict[tuple[str, Shape], int] = {}

    # --- one call, counted -------------------------------------------------------------------------
    def _count(self, key: str, shape: Shape, call: Callable[[], Any]) -> int:
        if (key, shape) not in self._cache:
            import torch
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter, torch.no_grad():
                call()
            self._cache[(key, shape)] = int(counter.get_total_flops())
        return self._cache[(key, shape)]

    def unet(self, shape: Shape) -> int:
        """One UNet evaluation (batch 1) on a latent of `shape`, with SDXL's full conditioning."""
        import torch

        def call() -> None:
            cfg = self.sdxl_unet.config
            pooled = self.sdxl_unet.add_embedding.linear_1.in_features - cfg.addition_time_embed_dim * 6
            self.sdxl_unet(torch.empty(1, cfg.in_channels, *shape, device="meta"), torch.tensor([500], device="meta"),
                           encoder_hidden_states=torch.empty(1, self.tokens, cfg.cross_attention_dim, device="meta"),
                           added_cond_kwargs={"text_embeds": torch.empty(1, pooled, device="meta"),
                                              "time_ids": torch.empty(1, 6, device="meta")})
        return self._count("unet", shape, call)

    def vae_encode(self, shape: Shape) -> int:
        """encoder + quant_conv on a (1, 3, h, w) image: what diffusers runs per tile or whole."""
        import torch

        def call() -> None:
            out = self.sdxl_vae.encoder(torch.empty(1, 3, *shape, device="meta"))
            if self.sdxl_vae.quant_conv is not None:
                self.sdxl_vae.quant_conv(out)
        return self._count("vae_encode", shape, call)

    def vae_decode(self, shape: Shape) -> int:
        """post_quant_conv + decoder on a (1, 4, h, w) latent."""
        import torch

        def call() -> None:
            z = torch.empty(1, self.sdxl_vae.config.latent_channels, *shape, device="meta")
            if self.sdxl_vae.post_quant_conv is not None:
                z = self.sdxl_vae.post_quant_conv(z)
            self.sdxl_vae.decoder(z)
        return self._count("vae_decode", shape, call)

    def upscaler(self, shape: Shape) -> int:
        import torch

        return self._count("rrdb", shape, lambda: self.rrdb(torch.empty(1, 3, *shape, device="meta")))

    def text_encoder(self, index: int) -> int:
        """One 77-token sequence through text encoder `index` (0: CLIP-L, 1: OpenCLIP-bigG)."""
        import torch

        ids = torch.zeros(1, self.tokens, dtype=torch.long, device="meta")
        return self._count(f"text_encoder_{index}", (1, self.tokens),
                           lambda: self.text_encoders[index](ids, output_hidden_states=True))

    def total(self, fn: Callable[[Shape], int], shapes: Iterable[Shape]) -> int:
        """Sum of fn over shapes, counting each distinct shape once."""
        return sum(fn(shape) * n for shape, n in Counter(shapes).items())


# --- the crops our run feeds the models ------------------------------------------------------------
def upscaler_crops(models: MetaModels, height: int, width: int, tile: int, margin: int) -> tuple[list[Shape], int, int]:
    """The padded input crops of render/stages/upscale.py for the configured tile/margin, and the
    tile and margin actually used (run_upscale fits the tile to the model's size rules first)."""
    import torch

    from ai_wallpaper.render.stages.upscale import _fit_tile, tiled_upscale

    req = models.upscaler_requirements
    tile = _fit_tile(tile, req)
    crops: list[Shape] = []

    def record(crop: torch.Tensor) -> torch.Tensor:
        h, w = crop.shape[-2:]
        pad_w, pad_h = req.get_padding(w, h)  # run_upscale's upscale_tile pads to the size rules
        crops.append((h + pad_h, w + pad_w))
        return torch.empty_like(crop)  # scale 1: only the crops matter here

    # The product's own tiler on a meta image: the crops are exactly the ones it cuts, nothing computed.
    ran = tiled_upscale(record, torch.empty((1, 3, height, width), device="meta"), 1, tile,
                        min(margin, (tile - 1) // 2))
    return crops, ran.tile, ran.margin


def diffusers_vae_tiles(models: MetaModels, height: int, width: int, tile: int) -> list[Shape]:
    """The tiles diffusers' AutoencoderKL cuts an (height, width) input into, in the input's units:
    starts every int(tile * (1 - tile_overlap_factor)) along each axis, each tile the slice
    [start, start + tile) clipped at the edge (so the last row/column is thinner). One whole tile
    when neither side exceeds `tile` (the `_encode`/`_decode` condition)."""
    if height <= tile and width <= tile:
        return [(height, width)]
    stride = int(tile * (1 - models.sdxl_vae.tile_overlap_factor))
    rows = [min(tile, height - i) for i in range(0, height, stride)]
    cols = [min(tile, width - j) for j in range(0, width, stride)]
    return [(h, w) for h in rows for w in cols]


def downsample_flops(src: Shape, dst: Shape, anchor: str) -> float:
    """Rough FLOPs of the final Pillow Lanczos resize (not a torch op, so the counter cannot see it):
    2 FLOPs x 3 channels x taps per output sample, horizontal pass then vertical, Lanczos-3 support
    widened by the reduction factor. An estimate only; it is ~1e-6 of the run either way."""
    from ai_wallpaper.render.stages.downsample import cover_crop_box

    left, top, right, bottom = cover_crop_box(src[1], src[0], dst[1], dst[0], anchor)
    scale_x, scale_y = (right - left) / dst[1], (bottom - top) / dst[0]
    taps_x, taps_y = 2 * 3 * max(scale_x, 1.0) + 1, 2 * 3 * max(scale_y, 1.0) + 1
    return 2 * 3 * (dst[1] * (bottom - top) * taps_x + dst[1] * dst[0] * taps_y)
