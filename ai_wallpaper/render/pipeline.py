"""The orchestrator: plan -> txt2img -> (refine) -> upscale -> enhance -> downsample, with checkpoints.

This is the thin I/O wrapper around the pure stage cores in `stages/`: it loads models lazily,
saves every stage into the run directory as it completes (so `--resume` can continue), measures
time and peak memory per stage, and writes the final PNG with its metadata.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypedDict

from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import RunError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.core.progress import PeakMemory, StageProgress
from ai_wallpaper.render import contact_sheet
from ai_wallpaper.render.devices import wants_vae_tiling
from ai_wallpaper.render.feasibility import check_sizes
from ai_wallpaper.render.final_outputs import stage_final
from ai_wallpaper.render.model_holder import ModelHolder, describe_models
from ai_wallpaper.render.quality import enhance_tiles, measure
from ai_wallpaper.render.run_dir import STAGE_FILES, RunDirectory, png_metadata
from ai_wallpaper.render.run_record import StageRecord, stage_conditioning
from ai_wallpaper.render.stages.common import CancelCheck, never_cancel, raise_if_cancelled
from ai_wallpaper.scene.screen_fit import settings_for_plan

if TYPE_CHECKING:
    from PIL import Image

    from ai_wallpaper.render.adaptive_refine import Choice
    from ai_wallpaper.render.invokeai.remote_stages import RemoteStages
    from ai_wallpaper.render.stages.refine import RefineConfig
    from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig

logger = log.get(__name__)
STAGE_ORDER = tuple(STAGE_FILES)  # base, refined, upscaled, enhanced, final; STAGES runs them in this order


@dataclass(frozen=True)
class PipelineOptions:
    save_stages: bool = False
    progress_stream: TextIO | None = None
    cancel: CancelCheck = never_cancel


class Prompting(TypedDict):  # what the plan hands every diffusion stage's config besides the settings
    prompt: str
    negative_prompt: str
    seed: int


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    final: Path
    stages: dict[str, StageRecord]
    seconds: float


class _Runner:
    """State of one pipeline run; each `stage_*` method is one numbered step, run through STAGES."""

    def __init__(self, run: RunDirectory, settings: Settings, paths: Paths, opts: PipelineOptions) -> None:
        self.run, self.settings, self.opts = run, settings, opts
        self.plan = run.plan
        self.models = ModelHolder(settings.models, paths, upscaler_half=settings.pipeline.upscale.half_precision)
        self.prompting = Prompting(prompt=self.plan.prompt, negative_prompt=self.plan.negative_prompt,
                                   seed=self.plan.seed)
        self.current: Image.Image | None = None
        self.latents: Any = None
        self.refined: Image.Image | None = None  # adaptive refinement's kept image, made in stage_base
        self.refine = settings.models.refiner is not None
        self.enhance = settings.pipeline.enhance.enabled
        self.remote: RemoteStages | None = None
        if settings.render.backend == "invokeai":
            from ai_wallpaper.render.invokeai.remote_stages import RemoteStages
            self.remote = RemoteStages(settings, paths)

    @contextmanager
    def stage(self, name: str) -> Iterator[StageProgress]:
        index = STAGE_ORDER.index(name) + 1
        progress = StageProgress(name, index, len(STAGE_ORDER), self.opts.progress_stream)
        logger.info("stage started", stage=name)
        started = time.monotonic()
        peak = PeakMemory()
        with peak.measure():
            try:
                yield progress
            finally:
                progress.finish()  # a failing stage closes its bar too
        seconds = time.monotonic() - started
        self._timing = (seconds, peak.peak_rss, peak.peak_cuda)
        logger.info("stage finished", stage=name, seconds=round(seconds, 2), peak_rss_mb=peak.peak_rss // 2**20)

    def done(self, name: str, image: Image.Image | None, compress: int, file: str | None = None,
             **extra: Any) -> None:
        """Record a finished stage; `file`: the image was saved already (per-monitor finals)."""
        seconds, rss, cuda = self._timing
        figures = None
        if image is not None and name in ("base", "enhanced"):  # how the VAE ran (models.memory.vae_tiling)
            tiled = wants_vae_tiling(self.settings.models.memory.vae_tiling, image.width * image.height)
            extra["vae"] = "tiled" if tiled else "whole"
        if image is not None:
            if file is None:
                text = png_metadata(self.plan, self.settings) if name == "final" else None
                file = self.run.save_image(name, image, compress_level=compress, text=text).name
            self.current = image
            started = time.monotonic()
            enh = self.settings.pipeline.enhance  # its tiles, for the seam score
            tiles = enhance_tiles(image.width, image.height, enh.tile, enh.overlap) if name == "enhanced" else None
            figures = measure(image, tiles=tiles).to_json()
            logger.info("stage quality", stage=name, ms=round(1000 * (time.monotonic() - started)), **figures)
        self.run.mark_stage(name, status="done", seconds=seconds, peak_rss=rss, peak_cuda=cuda, file=file,
                            quality=figures, **extra)
        raise_if_cancelled(self.opts.cancel)

    def input_image(self, stage: str) -> Image.Image:
        """The image the stage consumes: in memory, or (on resume) the last completed stage's file."""
        if self.current is not None:
            return self.current
        for previous in reversed(STAGE_ORDER[: STAGE_ORDER.index(stage)]):
            entry = self.run.record.stages.get(previous)
            if entry is not None and entry.status == "done":
                self.current = self.run.load_image(previous)
                return self.current
        raise RunError(f"no completed stage before {stage} in {self.run.path}")

    # 1. txt2img ---------------------------------------------------------------------------------
    def stage_base(self) -> None:
        from ai_wallpaper.render.lora_apply import applied_loras
        from ai_wallpaper.render.stages.txt2img import Txt2ImgConfig, Txt2ImgResult, decode_latents, run_txt2img

        if self.remote:
            return self.remote.base(self)
        cfg = Txt2ImgConfig.from_settings(self.settings, **self.prompting)
        adaptive = self.settings.pipeline.refine.adaptive if self.refine else []
        tries = None
        with self.stage("base") as progress:
            pipe = self.models.get("base")
            if adaptive:
                choice = self._best_switch_point(pipe, cfg, adaptive, progress)
                self.refined, tries = choice.image, choice.tries
                self.run.record.decisions["refined"] = {"high_noise_frac": choice.high_noise_frac}
                result = Txt2ImgResult(image=None, latents=choice.latents)
            else:
                with applied_loras(pipe, self.plan.loras):
                    result = run_txt2img(pipe, cfg, progress, self.opts.cancel)
            if self.refine:
                self.latents = result.latents
                self.run.save_latents(self.latents)
                image = decode_latents(pipe, self.latents)  # a preview: the refiner finishes the job
            else:
                assert result.image is not None
                image = result.image
        self.done("base", image, self.settings.output.intermediate_compress_level, adaptive=tries,
                  handoff="latents" if self.refine else "image", **stage_conditioning(cfg.prompt, self.plan.loras))
        if self.refine:
            self.current = None  # the refiner consumes latents, not the preview

    # 2. refine ----------------------------------------------------------------------------------
    def stage_refined(self) -> None:
        from ai_wallpaper.render.stages.refine import run_refine

        if not self.refine:
            self.run.mark_stage("refined", status="skipped", reason="models.refiner is null")
            return
        if self.remote:
            return self.remote.refined(self)
        cfg = self.refine_config()
        latents = self.latents if self.latents is not None else self.run.load_latents()
        with self.stage("refined") as progress:
            image = self.refined or run_refine(latents, self.models.get("refiner"), cfg, progress, self.opts.cancel)
            self.models.release("refiner")
        # SDXL LoRAs do not fit the refiner's UNet: it runs without the stack (recorded as such).
        self.done("refined", image, self.settings.output.intermediate_compress_level,
                  **stage_conditioning(cfg.prompt, ()))

    def refine_config(self) -> RefineConfig:
        """The refiner's config; adaptive refinement's chosen switch point once recorded (also on resume)."""
        from ai_wallpaper.render.stages.refine import RefineConfig

        cfg = RefineConfig.from_settings(self.settings, prompt=self.plan.refiner_prompt or self.plan.prompt,
                                         negative_prompt=self.plan.negative_prompt, seed=self.plan.seed)
        chosen = self.run.record.decisions.get("refined")
        return replace(cfg, high_noise_frac=chosen["high_noise_frac"]) if chosen else cfg

    def _best_switch_point(self, pipe: Any, t2i: Txt2ImgConfig, fracs: Sequence[float],
                           progress: StageProgress) -> Choice:
        from ai_wallpaper.render.adaptive_refine import try_switch_points

        return try_switch_points(pipe, self.models.get("refiner"), self.plan.loras, fracs, t2i,
                                 self.refine_config(), progress, self.opts.cancel)

    # 3. upscale ---------------------------------------------------------------------------------
    def stage_upscaled(self) -> None:
        from ai_wallpaper.render.stages.upscale import UpscaleConfig, run_upscale

        if self.remote:
            return self.remote.upscaled(self)
        cfg = UpscaleConfig.from_settings(self.settings)
        source = self.input_image("upscaled")
        with self.stage("upscaled") as progress:
            model = self.models.get("upscaler")
            if int(model.scale) != cfg.scale:
                raise RunError(f"models.upscaler is a {model.scale}x model but output.upscale_factor is {cfg.scale}",
                               hint=f"set output.upscale_factor: {model.scale} or use a {cfg.scale}x upscaler")
            image, ran = run_upscale(source, model, cfg, progress, self.opts.cancel)
            self.models.release("upscaler")
        expected = (self.plan.upscaled_size.width, self.plan.upscaled_size.height)
        if image.size != expected:
            raise RunError(f"upscaler produced {image.size[0]}x{image.size[1]}, expected {expected[0]}x{expected[1]}")
        self.done("upscaled", image, self.settings.output.intermediate_compress_level, upscaler=ran)

    # 4. enhance ---------------------------------------------------------------------------------
    def stage_enhanced(self) -> None:
        from ai_wallpaper.render.lora_apply import applied_loras
        from ai_wallpaper.render.stages.enhance import EnhanceConfig, run_enhance

        if not self.enhance:
            self.run.mark_stage("enhanced", status="skipped", reason="pipeline.enhance.enabled is false")
            return
        cfg = EnhanceConfig.from_settings(self.settings, **self.prompting)
        if cfg.steps_to_run == 0:  # like img2img: int(steps x strength) denoising steps, here none
            self.run.mark_stage("enhanced", status="skipped", reason=(
                f"pipeline.enhance: steps {cfg.steps} x strength {cfg.strength} runs no denoising step"))
            return
        source = self.input_image("enhanced")
        if earlier := self.run.record.decisions.get("enhanced"):
            # A resumed run repeats what the interrupted one chose: batch and tile change the result.
            cfg = replace(cfg, batch_size=earlier["batch_size"], tile=earlier["tile"],
                          overlap=earlier["overlap"])

        if self.remote and self.remote.enhanced(self, source, cfg):  # False: the server cannot, run it here
            return

        def decided(decision: dict[str, Any]) -> None:
            self.run.record.decisions["enhanced"] = decision
            self.run.save()

        with self.stage("enhanced") as progress:
            pipe = self.models.get("base")
            # The same stack as the base stage: its trigger words are in the prompt, and a style LoRA
            # missing here would be painted over at 8K.
            with applied_loras(pipe, self.plan.loras):
                image = run_enhance(source, pipe, cfg, progress, self.opts.cancel, on_decision=decided)
        self.done("enhanced", image, self.settings.output.intermediate_compress_level,
                  enhance=self.run.record.decisions["enhanced"], **stage_conditioning(cfg.prompt, self.plan.loras))


# The stages in run order, each with the step that runs it (STAGE_ORDER names the same five).
STAGES: tuple[tuple[str, Callable[[_Runner], None]], ...] = (
    ("base", _Runner.stage_base),
    ("refined", _Runner.stage_refined),
    ("upscaled", _Runner.stage_upscaled),
    ("enhanced", _Runner.stage_enhanced),
    ("final", stage_final),  # 5. downsample, per monitor where the plan has them
)


def run_pipeline(run: RunDirectory, settings: Settings, paths: Paths, opts: PipelineOptions) -> RunResult:
    """Run (or continue) every stage not yet completed in `run`, then return the final image path."""
    started = time.monotonic()
    settings = settings_for_plan(settings, run.plan)  # the base size the planner chose for the monitors
    runner = _Runner(run, settings, paths, opts)
    # 0. everything checkable without models
    check_sizes(settings, runner.plan)
    if not run.record.models:
        run.record.models = runner.remote.describe(runner) if runner.remote else describe_models(settings.models, paths)
        run.save()
    if runner.plan.self_test:
        logger.warning("self-test model: random weights, the images are not meaningful")
    for name, step in STAGES:
        if run.stage_done(name):
            logger.info("stage already complete, resuming after it", stage=name)
            continue
        raise_if_cancelled(opts.cancel)
        step(runner)
    runner.models.release_all()
    if not runner.remote and any(info.get("sha256") is None for info in run.record.models.values()):
        run.record.models = describe_models(settings.models, paths)  # downloaded during the run: hash them now
    if opts.save_stages:
        try:  # a diagnostic page: a failure to write it does not fail the finished run
            contact_sheet.write(run.path, contact_sheet.stage_entries(run.path, run.record.stages))
        except OSError as exc:
            logger.warning("contact sheet not written", error=str(exc))
    else:
        run.remove_intermediates()
    final = run.stage_path("final")
    run.finish("success", final=final, kept_intermediates=opts.save_stages)
    return RunResult(run.path, final, dict(run.record.stages), time.monotonic() - started)
