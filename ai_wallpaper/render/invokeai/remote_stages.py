"""The pipeline's diffusion and upscale stages on an InvokeAI server (render.backend: invokeai).

Each stage sends its input image up, runs its graph (graphs.py) through the queue (queue_runs.py) and
hands the downloaded image to the same `done()` as a local stage, so the run folder, run.json, quality
figures, --save-stages and --resume behave as in a local run. The server is whatever today's config
names (never a URL from run.json); its token never reaches a record or a log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ai_wallpaper.config.backend_settings import is_private_channel
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import RunError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.render.devices import wants_vae_tiling
from ai_wallpaper.render.invokeai import graphs, server_models
from ai_wallpaper.render.invokeai.client import InvokeAIClient, read_token
from ai_wallpaper.render.invokeai.queue_runs import QueueRun, run_graph, upload
from ai_wallpaper.render.run_record import stage_conditioning

if TYPE_CHECKING:
    from PIL import Image

    from ai_wallpaper.render.pipeline import _Runner

logger = log.get(__name__)
TILED_NODE = "tiled_multi_diffusion_denoise_latents"


def connect(settings: Settings, paths: Paths) -> InvokeAIClient:
    cfg = settings.invokeai
    if not is_private_channel(cfg.url):
        logger.warning("invokeai.plain_http", url=cfg.url,
                       note="prompts, images and the token cross the network unencrypted: use https or an SSH tunnel")
    return InvokeAIClient(cfg, read_token(cfg, paths.config_dir))


class RemoteStages:
    """The remote half of one run; `_Runner` hands each diffusion/upscale stage to it."""

    def __init__(self, settings: Settings, paths: Paths) -> None:
        self.settings = settings
        self.client = connect(settings, paths)
        self._models: server_models.ServerModels | None = None
        self._nodes: set[str] | None = None
        self.version = ""

    # --- the server ---------------------------------------------------------------------------
    def describe(self, runner: _Runner) -> dict[str, Any]:
        """run.json's `models`: the server, and the server's records of the models this run uses."""
        self.version = self.client.version()
        models = self.models(runner)
        return {"backend": {"name": "invokeai", "url": self.client.url, "version": self.version,
                            "queue_id": self.client.queue}, **models.describe()}

    def models(self, runner: _Runner) -> server_models.ServerModels:
        if self._models is None:
            self._models = server_models.resolve(self.client, self.settings, runner.plan.loras)
        return self._models

    def has_node(self, kind: str) -> bool:
        if self._nodes is None:
            self._nodes = self.client.invocation_types()
        return kind in self._nodes

    # --- stages -------------------------------------------------------------------------------
    def base(self, runner: _Runner, *, only_refined: bool = False) -> None:
        """txt2img, and with a refiner the refiner too: one graph, the latents handed over on the server."""
        from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig

        settings, models = self.settings, self.models(runner)
        t2i = Txt2ImgConfig.from_settings(settings, **runner.prompting)
        refine = runner.refine_config() if runner.refine else None
        if runner.refine and models.refiner is None:
            raise RunError("models.refiner is set but the server resolved no refiner")
        tiled = wants_vae_tiling(settings.models.memory.vae_tiling, t2i.width * t2i.height)
        graph = graphs.base_graph(t2i, models.base, models.loras, tiled_vae=tiled,
                                  refiner=models.refiner if refine else None, refine=refine)
        outputs = {"base": graphs.OUTPUT_NODES["base"]}
        if refine:
            outputs["refined"] = graphs.OUTPUT_NODES["refined"]
        compress = settings.output.intermediate_compress_level
        with runner.stage("refined" if only_refined else "base") as progress:
            queued, images = self._run(runner, graph, "base", outputs, progress)
        total = runner._timing[0]
        base_seconds = queued.ready_after.get(outputs["base"], total) if refine else total
        if not only_refined:
            runner._timing = (base_seconds, *runner._timing[1:])
            runner.done("base", images["base"], compress, handoff="latents" if refine else "image",
                        remote=self._record(queued), **stage_conditioning(t2i.prompt, runner.plan.loras))
        if refine:
            seconds = total if only_refined else max(total - base_seconds, 0.0)
            runner._timing = (seconds, *runner._timing[1:])
            # SDXL LoRAs do not fit the refiner's UNet: it runs without the stack (as locally).
            runner.done("refined", images["refined"], compress, remote=self._record(queued, shared_with="base"),
                        **stage_conditioning(refine.prompt, ()))

    def refined(self, runner: _Runner) -> None:
        # Reached only when the run stopped between saving the base and the refined image: the server
        # keeps no latents between queue items, so the one graph runs again for the refined image.
        self.base(runner, only_refined=True)

    def upscaled(self, runner: _Runner) -> None:
        from ai_wallpaper.render.stages.upscale import UpscaleConfig

        cfg = UpscaleConfig.from_settings(self.settings)
        model = self.models(runner).upscaler
        assert model is not None
        source = runner.input_image("upscaled")
        with runner.stage("upscaled") as progress:
            name = upload(self.client, source, "upscale-input")
            queued, images = self._run(runner, graphs.upscale_graph(cfg, name, model), "upscale",
                                       {"upscaled": graphs.OUTPUT_NODES["upscaled"]}, progress)
        image = images["upscaled"]
        expected = (runner.plan.upscaled_size.width, runner.plan.upscaled_size.height)
        if image.size != expected:
            raise RunError(f"the server's upscaler {model['name']!r} produced {image.size[0]}x{image.size[1]}, "
                           f"expected {expected[0]}x{expected[1]}",
                           hint=f"use a {cfg.scale}x model on the server or set output.upscale_factor")
        runner.done("upscaled", image, self.settings.output.intermediate_compress_level,
                    upscaler={"server_model": model["name"], "tile": cfg.tile}, remote=self._record(queued))

    def enhanced(self, runner: _Runner, source: Image.Image, cfg: Any) -> bool:
        """Run the 8K pass on the server: True when done or skipped here, False to run it locally."""
        if not self.has_node(TILED_NODE):
            why = f"the InvokeAI server {self.client.url} (version {self.version}) has no {TILED_NODE} node"
            if self.settings.invokeai.enhance_fallback == "local":
                logger.warning("invokeai.enhance_local", reason=why)
                return False
            logger.warning("invokeai.enhance_skipped", reason=why)
            runner.run.mark_stage("enhanced", status="skipped",
                                  reason=f"{why} (invokeai.enhance_fallback: skip)")
            return True
        models = self.models(runner)
        tiled = wants_vae_tiling(self.settings.models.memory.vae_tiling, source.width * source.height)
        with runner.stage("enhanced") as progress:
            name = upload(self.client, source, "enhance-input")
            graph = graphs.enhance_graph(cfg, name, source.width, source.height, models.base, models.loras,
                                         tiled_vae=tiled)
            queued, images = self._run(runner, graph, "enhance", {"enhanced": graphs.OUTPUT_NODES["enhanced"]},
                                       progress)
        if images["enhanced"].size != source.size:
            raise RunError(f"the server's enhancement returned {images['enhanced'].size}, expected {source.size}")
        runner.done("enhanced", images["enhanced"], self.settings.output.intermediate_compress_level,
                    enhance={"tile": cfg.tile, "overlap": graphs.tiled_overlap(cfg.overlap),
                             "node": TILED_NODE}, remote=self._record(queued),
                    **stage_conditioning(cfg.prompt, runner.plan.loras))
        return True

    # --- helpers ------------------------------------------------------------------------------
    def _run(self, runner: _Runner, graph: graphs.Graph, label: str, outputs: dict[str, str],
             progress: Any) -> tuple[QueueRun, dict[str, Image.Image]]:
        graph_id = f"ai-wallpaper-{runner.run.record.run_id}-{label}"
        return run_graph(self.client, self.settings.invokeai, graph, graph_id, outputs, progress, runner.opts.cancel)

    def _record(self, queued: QueueRun, shared_with: str | None = None) -> dict[str, Any]:
        record = queued.to_json()
        if shared_with:  # the same queue item as an earlier stage: no second copy of the graph
            record = {**record, "graph": f"same queue item as {shared_with}"}
        self.version = self.version or self.client.version()  # a resumed run did not ask yet
        return {"server": self.client.url, "version": self.version, **record,
                "ready_after_seconds": {k: round(v, 3) for k, v in queued.ready_after.items()}}
