"""A run directory: stage images, run.json, and the checkpoint that `--resume` continues from.

run.json is rewritten atomically after every stage, so after a crash it always describes the
stages whose files are complete on disk.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ai_wallpaper import __version__
from ai_wallpaper.core import atomic
from ai_wallpaper.core.errors import ConfigError, RunError
from ai_wallpaper.render.contact_sheet import CONTACT_SHEET
from ai_wallpaper.render.run_record import (
    RUN_JSON,
    SCREEN_FILE,
    STAGE_FILES,
    RunManifest,
    RunStatus,
    StageRecord,
    StageStatus,
    Trigger,
    read_record,
)
from ai_wallpaper.scene.plan import Plan

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from ai_wallpaper.config.settings import Settings

OWNER_MARKER = ".ai-wallpaper-run"  # holds the run id; only a folder carrying it may ever be pruned
BASE_LATENTS = "01_base.latents.safetensors"  # refiner hand-off; lets --resume skip the base
LIBRARIES = ("torch", "torchvision", "diffusers", "transformers", "accelerate", "peft", "spandrel", "safetensors",
             "pillow", "numpy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "ai-wallpaper": __version__}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


@dataclass
class RunDirectory:
    path: Path
    record: RunManifest

    # --- creating and opening ------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, *, run_id: str, plan: Plan, settings: dict[str, Any], trigger: Trigger,
               owned: bool = True) -> RunDirectory:
        """owned: the program chose this folder (not --output), so pruning may remove it later."""
        problem = new_folder_problem(path)
        if problem:
            raise RunError(problem, hint=f"choose another --output, or continue it with --resume {path}")
        try:
            path.mkdir(parents=True, exist_ok=True)
            atomic.remove_stale_temp_files(path, targets=our_file_names())  # a run killed during its first write
        except OSError as exc:
            raise RunError(f"cannot create the run directory {path}: {exc.strerror}",
                           hint="check the folder's permissions and free space, or choose another --output") from None
        if owned:
            atomic.write_text(path / OWNER_MARKER, run_id + "\n")
        record = RunManifest(run_id=run_id, status="running", plan=plan, settings=settings, stages={},
                             trigger=trigger, created=_now(), settings_fingerprint=plan.settings_fingerprint,
                             versions=library_versions(), self_test=plan.self_test)
        run = cls(path, record)
        run.save()
        return run

    @classmethod
    def open(cls, path: Path) -> RunDirectory:
        file = path / RUN_JSON
        if not file.is_file():
            raise ConfigError(f"{path} is not a run directory (no {RUN_JSON})",
                              hint="pass the folder a previous run printed (`ai-wallpaper history` lists them); "
                                   "a run killed before its first record can simply be started again there "
                                   "with --output")
        run = cls(path, read_record(file))
        atomic.remove_stale_temp_files(path, targets=our_file_names())  # the interrupted run's half-written files
        return run

    # --- record --------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def plan(self) -> Plan:
        return self.record.plan

    def save(self) -> None:
        atomic.write_json(self.path / RUN_JSON, self.record.to_json())

    def stage_done(self, stage: str) -> bool:
        return stage in self.record.stages  # an entry is written only once the stage is done or skipped

    def mark_stage(self, stage: str, *, status: StageStatus, seconds: float = 0.0, peak_rss: int = 0,
                   peak_cuda: int | None = None, file: str | None = None, **details: Any) -> None:
        """details: StageRecord's descriptive fields (reason, handoff, prompt, loras)."""
        self.record.stages[stage] = StageRecord(
            status=status, seconds=round(seconds, 3), peak_rss_mb=round(peak_rss / 2**20, 1),
            peak_cuda_mb=None if peak_cuda is None else round(peak_cuda / 2**20, 1), file=file, **details)
        self.save()

    def finish(self, status: RunStatus, *, error: str | None = None, final: Path | None = None,
               kept_intermediates: bool = True) -> None:
        r = self.record
        r.status, r.finished, r.error = status, _now(), error
        r.final, r.intermediates_kept = (str(final) if final else None), kept_intermediates
        self.save()

    # --- images --------------------------------------------------------------------------------
    def stage_path(self, stage: str) -> Path:
        """The stage's image; a per-monitor final is the first monitor's (render/final_outputs.py)."""
        entry = self.record.stages.get(stage)
        if stage == "final" and entry is not None and entry.file and SCREEN_FILE.fullmatch(entry.file):
            return self.path / entry.file
        return self.path / STAGE_FILES[stage]

    def save_image(self, stage: str, image: Image.Image, *, compress_level: int,
                   text: dict[str, str] | None = None, file_name: str | None = None) -> Path:
        """file_name: a monitor's final (run_record.SCREEN_FILE), instead of the stage's own file."""
        from PIL import PngImagePlugin

        info = None
        if text:
            info = PngImagePlugin.PngInfo()
            for key, value in text.items():
                info.add_itxt(key, value)
        if file_name is not None and not (stage == "final" and SCREEN_FILE.fullmatch(file_name)):
            raise ValueError(f"not a monitor file name: {file_name!r}")
        target = self.path / file_name if file_name else self.path / STAGE_FILES[stage]
        atomic.write_with(target, lambda fh: image.save(fh, format="PNG", compress_level=compress_level,
                                                        pnginfo=info))
        return target

    def load_image(self, stage: str) -> Image.Image:
        from PIL import Image

        target = self.stage_path(stage)
        try:
            with Image.open(target) as img:
                return img.convert("RGB")
        except OSError as exc:
            raise RunError(f"cannot resume: {target} is missing or damaged ({exc})",
                           hint="start a new run; this checkpoint is incomplete") from None

    def save_latents(self, latents: torch.Tensor) -> Path:
        from safetensors.torch import save

        target = self.path / BASE_LATENTS
        atomic.write_bytes(target, save({"latents": latents.detach().cpu().contiguous()}))
        return target

    def load_latents(self) -> torch.Tensor:
        from safetensors.torch import load_file

        target = self.path / BASE_LATENTS
        if not target.is_file():
            raise RunError(f"cannot resume: {target} is missing", hint="start a new run")
        return load_file(str(target))["latents"]

    def remove_intermediates(self) -> None:
        for stage, name in STAGE_FILES.items():
            if stage != "final":
                (self.path / name).unlink(missing_ok=True)
        (self.path / BASE_LATENTS).unlink(missing_ok=True)


# --- folder rules ---------------------------------------------------------------------------------
def new_folder_problem(path: Path) -> str | None:
    """Why `path` cannot hold a new run, or None. Leftovers of a run killed during its very first
    write (our marker, our temp files) do not count: such a folder can be used again."""
    if path.is_symlink() and not path.is_dir():
        return f"{path} is a dangling link"
    if path.exists() and not path.is_dir():
        return f"{path} exists and is not a folder"
    if path.is_dir():
        try:
            names = [e.name for e in path.iterdir()]
        except OSError as exc:
            return f"cannot read the folder {path}: {exc.strerror}"
        foreign = [n for n in names if n != OWNER_MARKER and not is_our_temp_file(n)]
        if foreign:
            return f"run directory {path} already exists and is not empty"
    ancestor = path
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a folder, so {path} cannot be created"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable, so no run can be saved in {path}"
    return None


# --- which files are ours -----------------------------------------------------------------------
class _OurNames:
    """The names a run folder may hold: the fixed ones and one final image per monitor."""

    fixed = frozenset({RUN_JSON, OWNER_MARKER, BASE_LATENTS, CONTACT_SHEET, *STAGE_FILES.values()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self.fixed or bool(SCREEN_FILE.fullmatch(name)))


def our_file_names() -> _OurNames:
    return _OurNames()


def is_our_temp_file(name: str) -> bool:
    return atomic.temp_target(name) in our_file_names()


def png_metadata(plan: Plan, settings: Settings) -> dict[str, str]:
    """Deterministic text chunks (no run id or time), so the same seed gives the same file bytes."""
    import json

    from ai_wallpaper import __version__

    meta = {
        "prompt": plan.prompt, "negative_prompt": plan.negative_prompt, "seed": plan.seed,
        "theme": plan.theme.key if plan.theme else None, "models": plan.models,
        "loras": [{"name": c.name, "weight": c.weight, "sha256": c.sha256} for c in plan.loras],
        "settings_fingerprint": plan.settings_fingerprint, "software": f"ai-wallpaper {__version__}",
        "steps": {"txt2img": settings.pipeline.txt2img.steps, "enhance": settings.pipeline.enhance.steps,
                  "strength": settings.pipeline.enhance.strength},
    }
    text = {"Software": f"ai-wallpaper {__version__}", "Description": plan.prompt, "ai-wallpaper": json.dumps(meta)}
    if plan.self_test:
        text["Comment"] = "built-in self-test model (random weights): this image is not meaningful"
    return text
