"""The pipeline's stages as InvokeAI graphs: pure functions from stage configs to graph JSON.

The same stage configs as the local path (render/stages/*.py, built from settings) go in, so a remote
run follows the same recipe: base txt2img (+ the refiner from the `high_noise_frac` switch point, the
base's noisy latents handed over on the server, as diffusers' ensemble of experts does), the LoRA
stack on the base UNet and both text encoders, the spandrel upscaler, and the tiled 8K enhancement
through InvokeAI's tiled multi-diffusion node. Node and field names are InvokeAI 6's invocation schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import SchedulerName
from ai_wallpaper.render.stages.enhance import EnhanceConfig
from ai_wallpaper.render.stages.refine import RefineConfig
from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig
from ai_wallpaper.render.stages.upscale import UpscaleConfig
from ai_wallpaper.scene.prompt_syntax import to_compel

# Our sampler names -> InvokeAI's (its "_k" suffix = Karras sigmas).
SCHEDULERS: dict[SchedulerName, str] = {
    "dpmpp_2m_karras": "dpmpp_2m_k", "dpmpp_2m": "dpmpp_2m", "euler": "euler", "euler_a": "euler_a", "ddim": "ddim",
}
SEED_LIMIT = 2**32  # InvokeAI's noise seed is a uint32; ours go to 2**63-1 (config/vocabulary.py SEED_MAX)
# The refiner's aesthetic-score conditioning, diffusers' StableDiffusionXLImg2ImgPipeline defaults.
AESTHETIC, NEGATIVE_AESTHETIC = 6.0, 2.5
# The nodes whose image is a stage's result (what remote_stages.py downloads).
OUTPUT_NODES = {"base": "base_decode", "refined": "refiner_decode", "upscaled": "upscale", "enhanced": "decode"}


def server_seed(seed: int) -> int:
    return seed % SEED_LIMIT


@dataclass(frozen=True)
class LoraRef:
    model: dict[str, Any]  # the server's ModelIdentifierField
    weight: float


@dataclass
class Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)

    def node(self, node_id: str, kind: str, **fields: Any) -> str:
        # Every image is an intermediate: the daemon brings it home, the user's gallery stays clean.
        self.nodes[node_id] = {"id": node_id, "type": kind, "is_intermediate": True, "use_cache": False, **fields}
        return node_id

    def link(self, source: str, source_field: str, destination: str, destination_field: str) -> None:
        self.edges.append({"source": {"node_id": source, "field": source_field},
                           "destination": {"node_id": destination, "field": destination_field}})

    def to_json(self, graph_id: str) -> dict[str, Any]:
        return {"id": graph_id, "nodes": self.nodes, "edges": self.edges}


def _sdxl_model(g: Graph, model: dict[str, Any], loras: tuple[LoraRef, ...]) -> tuple[str, str]:
    """The base model loader (+ the LoRA stack); returns (node giving unet/clip/clip2, node giving vae)."""
    loader = g.node("model", "sdxl_model_loader", model=model)
    if not loras:
        return loader, loader
    stack = g.node("loras", "sdxl_lora_collection_loader",
                   loras=[{"lora": lora.model, "weight": lora.weight} for lora in loras])
    for part in ("unet", "clip", "clip2"):
        g.link(loader, part, stack, part)
    return stack, loader


def _prompts(g: Graph, encoders: str, prompt: str, negative: str, width: int, height: int) -> None:
    for node_id, text in (("positive", prompt), ("negative", negative)):
        compel = to_compel(text)  # the plan keeps A1111 weighting; InvokeAI parses compel's
        g.node(node_id, "sdxl_compel_prompt", prompt=compel, style=compel, original_width=width,
               original_height=height, target_width=width, target_height=height)
        g.link(encoders, "clip", node_id, "clip")
        g.link(encoders, "clip2", node_id, "clip2")


def base_graph(t2i: Txt2ImgConfig, model: dict[str, Any], loras: tuple[LoraRef, ...], *, tiled_vae: bool,
               refiner: dict[str, Any] | None = None, refine: RefineConfig | None = None) -> Graph:
    """txt2img; with a refiner the base stops at the switch point and the refiner finishes on its latents."""
    g = Graph()
    unet, vae = _sdxl_model(g, model, loras)
    _prompts(g, unet, t2i.prompt, t2i.negative_prompt, t2i.width, t2i.height)
    g.node("noise", "noise", seed=server_seed(t2i.seed), width=t2i.width, height=t2i.height, use_cpu=True)
    switch = refine.high_noise_frac if refiner is not None and refine is not None else 1.0
    g.node("denoise", "denoise_latents", steps=t2i.steps, cfg_scale=t2i.guidance_scale,
           scheduler=SCHEDULERS[t2i.scheduler], denoising_start=0.0, denoising_end=switch)
    # With a refiner this decode is the preview the local path saves too (the refiner finishes the job).
    _denoise_and_decode(g, unet, vae, "base_decode", tiled_vae)
    if refiner is not None and refine is not None:
        _refiner(g, refiner, refine, t2i.width, t2i.height, tiled_vae)
    return g


def _refiner(g: Graph, refiner: dict[str, Any], cfg: RefineConfig, width: int, height: int, tiled_vae: bool) -> None:
    g.node("refiner_model", "sdxl_refiner_model_loader", model=refiner)
    for node_id, text, score in (("refiner_positive", cfg.prompt, AESTHETIC),
                                 ("refiner_negative", cfg.negative_prompt, NEGATIVE_AESTHETIC)):
        g.node(node_id, "sdxl_refiner_compel_prompt", style=to_compel(text), original_width=width,
               original_height=height, aesthetic_score=score)
        g.link("refiner_model", "clip2", node_id, "clip2")
    # No noise input: the base's latents are already noised to the switch point (InvokeAI adds none then).
    g.node("refiner_denoise", "denoise_latents", steps=cfg.steps, cfg_scale=cfg.guidance_scale,
           scheduler=SCHEDULERS[cfg.scheduler], denoising_start=cfg.high_noise_frac, denoising_end=1.0)
    g.link("refiner_positive", "conditioning", "refiner_denoise", "positive_conditioning")
    g.link("refiner_negative", "conditioning", "refiner_denoise", "negative_conditioning")
    g.link("denoise", "latents", "refiner_denoise", "latents")
    g.link("refiner_model", "unet", "refiner_denoise", "unet")
    g.node("refiner_decode", "l2i", tiled=tiled_vae, fp32=True)
    g.link("refiner_denoise", "latents", "refiner_decode", "latents")
    g.link("refiner_model", "vae", "refiner_decode", "vae")


def upscale_graph(cfg: UpscaleConfig, image_name: str, model: dict[str, Any]) -> Graph:
    g = Graph()
    g.node("upscale", "spandrel_image_to_image", image={"image_name": image_name}, image_to_image_model=model,
           tile_size=cfg.tile or 0)  # 0: InvokeAI runs the whole image in one pass
    return g


def enhance_graph(cfg: EnhanceConfig, image_name: str, width: int, height: int, model: dict[str, Any],
                  loras: tuple[LoraRef, ...], *, tiled_vae: bool) -> Graph:
    """The 8K detail pass: encode, re-noise to 1 - strength, tiled multi-diffusion, decode (VAE tiled)."""
    g = Graph()
    unet, vae = _sdxl_model(g, model, loras)
    _prompts(g, unet, cfg.prompt, cfg.negative_prompt, cfg.tile, cfg.tile)  # size conditioning of one tile
    g.node("encode", "i2l", image={"image_name": image_name}, tiled=tiled_vae, fp32=True)
    g.link(vae, "vae", "encode", "vae")
    g.node("noise", "noise", seed=server_seed(cfg.seed), width=width, height=height, use_cpu=True)
    g.node("denoise", "tiled_multi_diffusion_denoise_latents", tile_width=cfg.tile, tile_height=cfg.tile,
           tile_overlap=tiled_overlap(cfg.overlap), steps=cfg.steps, cfg_scale=cfg.guidance_scale,
           scheduler=SCHEDULERS[cfg.scheduler], denoising_start=1.0 - cfg.strength, denoising_end=1.0)
    g.link("encode", "latents", "denoise", "latents")
    _denoise_and_decode(g, unet, vae, "decode", tiled_vae)
    return g


def _denoise_and_decode(g: Graph, unet: str, vae: str, decode: str, tiled_vae: bool) -> None:
    """Wire the "denoise" node to the prompts, the noise and the UNet, and decode its latents."""
    g.link("positive", "conditioning", "denoise", "positive_conditioning")
    g.link("negative", "conditioning", "denoise", "negative_conditioning")
    g.link("noise", "noise", "denoise", "noise")
    g.link(unet, "unet", "denoise", "unet")
    g.node(decode, "l2i", tiled=tiled_vae, fp32=True)
    g.link("denoise", "latents", decode, "latents")
    g.link(vae, "vae", decode, "vae")


def tiled_overlap(overlap: int) -> int:
    """InvokeAI's tiled node needs an overlap > 0 (a multiple of 8); ours may be 0."""
    return max(overlap, 8)


def node_types(graph: Graph) -> set[str]:
    return {node["type"] for node in graph.nodes.values()}


def required_nodes(settings: Settings) -> set[str]:
    """Every node type a run with these settings may send: its own graphs, built with placeholder
    models and one LoRA (a run may pick some). `ai-wallpaper doctor` checks the server has them."""
    model = {"key": "", "hash": "", "name": "", "base": "", "type": ""}
    loras = (LoraRef(model, 1.0),)
    t2i = Txt2ImgConfig.from_settings(settings, prompt="-", negative_prompt="", seed=0)
    refine = RefineConfig.from_settings(settings, prompt="-", negative_prompt="", seed=0) \
        if settings.models.refiner else None
    graphs = [base_graph(t2i, model, loras, tiled_vae=False, refiner=model if refine else None, refine=refine),
              upscale_graph(UpscaleConfig.from_settings(settings), "-", model)]
    if settings.pipeline.enhance.enabled:
        enhance = EnhanceConfig.from_settings(settings, prompt="-", negative_prompt="", seed=0)
        graphs.append(enhance_graph(enhance, "-", 1024, 1024, model, loras, tiled_vae=True))
    return set().union(*(node_types(g) for g in graphs))
