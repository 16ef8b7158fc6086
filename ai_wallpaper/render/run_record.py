"""run.json: the typed record of one run (`RunManifest`), read as untrusted data.

A run folder can be copied from another machine or edited by hand, so `--resume` treats its
run.json like any config file: bounded, strictly shaped, and only ever *data*. A record that is not
a run of this program (foreign keys, wrong types, unknown format) is refused with a ConfigError
(exit 3) naming each problem; nothing in it is executed, and the settings that could execute, write
or connect anywhere come from the user's current config (`Settings.with_recipe_of`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from ai_wallpaper.config.schema import Source, build, option
from ai_wallpaper.config.screens import MAX_MONITORS, screen_problem
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.config.vocabulary import seed_problem
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.core.history_db import TRIGGERS, RunStatus, Trigger
from ai_wallpaper.core.untrusted_input import loads_json
from ai_wallpaper.scene.plan import LoraChoice, Plan

RUN_JSON = "run.json"
RECORD_FORMAT = 1  # written as "format"; records from before it have none and are read as format 1
MAX_RECORD_BYTES = 4 * 2**20  # a real run.json is a few KiB
# The id `generate` and the daemon give a run: local time and 6 hex digits. Also a folder name,
# so it must never hold a path separator or "..".
RUN_ID_PATTERN = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
StageStatus = Literal["done", "skipped"]
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
STAGE_FILES: dict[str, str] = {
    "base": "01_base.png",
    "refined": "02_refined.png",
    "upscaled": "03_upscaled_8k.png",
    "enhanced": "04_enhanced_8k.png",
    "final": "05_final_4k.png",
}
_MAX_SIDE = 65536
# One monitor's final image (desktop.layout per-monitor): config/screens.py's slug, never a path.
SCREEN_FILE = re.compile(r"05_final_[a-z0-9][a-z0-9-]{0,47}\.png")


def screen_file(slug: str) -> str:
    name = f"05_final_{slug}.png"
    if not SCREEN_FILE.fullmatch(name) or name == STAGE_FILES["final"]:
        raise ValueError(f"not a monitor file slug: {slug!r}")
    return name


@dataclass
class StageRecord:
    """One stage's entry in run.json."""

    status: StageStatus
    seconds: float = option(0.0, min=0)
    peak_rss_mb: float = option(0.0, min=0)
    peak_cuda_mb: float | None = option(None, min=0)
    file: str | None = None  # always STAGE_FILES[stage] inside the run folder, or None
    reason: str | None = None  # why a stage was skipped
    handoff: Literal["latents", "image"] | None = None  # what the base stage passed on
    prompt: str | None = None  # a diffusion stage: the prompt it encoded
    loras: list[dict[str, Any]] | None = None  # a diffusion stage: [{name, weight, sha256}]
    upscaler: dict[str, Any] | None = None  # the upscale stage: architecture, scale, dtype, device, tile, margin
    enhance: dict[str, Any] | None = None  # the enhancement: batch_size, tile, overlap, backoffs
    adaptive: list[dict[str, Any]] | None = None  # the base stage under adaptive refinement: every try
    vae: Literal["whole", "tiled"] | None = None  # the base and enhanced stages: how the VAE ran
    quality: dict[str, float] | None = None  # render/quality.py figures of the stage's image (enhanced: + seam)
    remote: dict[str, Any] | None = None  # render.backend invokeai: server, queue item, batch, graph sent
    screens: list[dict[str, Any]] | None = None  # the final stage per monitor: name, width, height, file

    def to_json(self) -> dict[str, Any]:
        always = ("status", "seconds", "peak_rss_mb", "peak_cuda_mb", "file")
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k in always}


def stage_conditioning(prompt: str, stack: Sequence[LoraChoice]) -> dict[str, Any]:
    """What run.json records of a diffusion stage: the prompt it encoded and the LoRAs it ran with."""
    return {"prompt": prompt, "loras": [{"name": c.name, "weight": c.weight, "sha256": c.sha256} for c in stack]}


@dataclass
class RunManifest:
    """run.json. `settings` is the recorded settings snapshot (checked against the schema on read)."""

    run_id: str
    status: RunStatus
    plan: Plan
    settings: dict[str, Any]
    stages: dict[str, StageRecord]
    format: int = RECORD_FORMAT
    trigger: Trigger = "manual"
    created: str | None = None
    settings_fingerprint: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    self_test: bool = False
    finished: str | None = None
    error: str | None = None
    final: str | None = None
    intermediates_kept: bool | None = None
    # Choices a stage made while running that change its result (the enhancement's batch size and tile
    # after out-of-memory backoffs), written as they are made so that --resume repeats them.
    decisions: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["plan"] = self.plan.to_json()
        data["stages"] = {name: entry.to_json() for name, entry in self.stages.items()}
        return data

    @classmethod
    def from_json(cls, data: Any, where: str) -> RunManifest:
        """The record in `data`; ConfigError listing every problem when it is not one of ours."""
        problems = record_problems(data, where)
        if problems:
            raise ConfigError(problems, hint=f"{where} is not a run of this program; start a new run instead")
        stages = {name: build(StageRecord, entry, Source(where))[0] for name, entry in data["stages"].items()}
        simple = {f.name: data[f.name] for f in dataclasses.fields(cls)
                  if f.name in data and f.name not in ("plan", "stages")}
        return cls(**simple, plan=Plan.from_json(data["plan"]),
                   stages={k: v for k, v in stages.items() if v is not None})


_FIELDS = {f.name: f for f in dataclasses.fields(RunManifest)}
_REQUIRED = tuple(name for name, f in _FIELDS.items()
                  if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.urandom(3).hex()}"


def is_run_id(value: object) -> bool:
    return isinstance(value, str) and RUN_ID_PATTERN.fullmatch(value) is not None


def read_record(file: Path) -> RunManifest:
    """Parse and validate `file`; raise ConfigError listing every problem."""
    where = str(file)
    try:
        with file.open("rb") as fh:
            raw = fh.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_RECORD_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_RECORD_BYTES // 2**20} MiB: not a run record")
    try:
        record = loads_json(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # JSONDecodeError, too deep a nesting included (loads_json)
        raise ConfigError(f"{where}: not valid JSON: {exc}") from None
    return RunManifest.from_json(record, where)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def record_problems(record: Any, where: str) -> list[str]:
    if not isinstance(record, dict):
        return [f"{where}: expected a JSON object, got {type(record).__name__}"]
    problems: list[str] = []

    def bad(key: str, message: str) -> None:
        problems.append(f"{where}: {key}: {message}")

    for key in sorted(set(record) - set(_FIELDS)):
        bad(key, "unknown key (not written by ai-wallpaper)")
    for key in _REQUIRED:
        if key not in record:
            bad(key, "missing")
    fmt = record.get("format", RECORD_FORMAT)
    if fmt != RECORD_FORMAT or isinstance(fmt, bool):
        bad("format", f"{fmt!r} is not a format this version reads ({RECORD_FORMAT}); "
                      "it was written by another version of ai-wallpaper")
    if "run_id" in record and not is_run_id(record["run_id"]):
        bad("run_id", f"{record['run_id']!r} is not a run id (YYYYMMDD-HHMMSS-xxxxxx)")
    if record.get("trigger", "manual") not in TRIGGERS:
        bad("trigger", f"must be one of {', '.join(TRIGGERS)}")
    if "status" in record and record["status"] not in RUN_STATUSES:
        bad("status", f"must be one of {', '.join(RUN_STATUSES)}")
    for key in ("created", "finished", "error", "final", "settings_fingerprint"):
        if record.get(key) is not None and not isinstance(record[key], str):
            bad(key, "must be text")
    for key in ("self_test", "intermediates_kept"):
        if record.get(key) is not None and not isinstance(record[key], bool):
            bad(key, "must be true or false")
    for key in ("versions", "models", "decisions"):
        if key in record and not isinstance(record[key], dict):
            bad(key, "must be an object")
    enhanced = record.get("decisions", {}).get("enhanced") if isinstance(record.get("decisions"), dict) else None
    if enhanced is not None and not (isinstance(enhanced, dict)
                                     and all(_int_in(enhanced.get(k), 0 if k == "overlap" else 1, _MAX_SIDE)
                                             for k in ("batch_size", "tile", "overlap"))):
        bad("decisions.enhanced", f"must hold batch_size, tile and overlap as whole numbers up to {_MAX_SIDE}")
    if "settings" in record:
        _, settings_problems = build(Settings, record["settings"], Source(f"{where} settings"))
        problems.extend(str(p) for p in settings_problems)
    if "plan" in record:
        problems.extend(f"{where}: plan: {p}" for p in plan_problems(record["plan"]))
    if "stages" in record:
        problems.extend(f"{where}: stages: {p}" for p in stage_problems(record["stages"]))
    return problems


def plan_problems(plan: Any) -> list[str]:
    if not isinstance(plan, dict):
        return ["must be an object"]
    problems: list[str] = []
    for key in ("prompt", "negative_prompt"):
        if not isinstance(plan.get(key), str):
            problems.append(f"{key}: must be text")
    if problem := seed_problem(plan.get("seed")):
        problems.append(f"seed: {problem}")
    for key in ("base_size", "upscaled_size", "final_size"):
        size = plan.get(key)
        if not (isinstance(size, dict) and set(size) == {"width", "height"}
                and all(_int_in(size[k], 1, _MAX_SIDE) for k in ("width", "height"))):
            problems.append(f"{key}: must be {{width, height}} in pixels (1..{_MAX_SIDE})")
    problems.extend(_screen_problems(plan.get("screens", [])))
    loras = plan.get("loras", [])
    if not isinstance(loras, list):
        problems.append("loras: must be a list")
    else:
        for i, lora in enumerate(loras):
            file = lora.get("file") if isinstance(lora, dict) else None
            if not (isinstance(file, str) and file.endswith(".safetensors") and Path(file).is_absolute()):
                problems.append(f"loras[{i}].file: must be an absolute path of a .safetensors file")
            weight = lora.get("weight") if isinstance(lora, dict) else None
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
                problems.append(f"loras[{i}].weight: must be a finite number")
    if not problems:
        try:
            Plan.from_json(plan)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"cannot be read: {type(exc).__name__}: {exc}")
    return problems


def stage_problems(stages: Any) -> list[str]:
    if not isinstance(stages, dict):
        return ["must be an object"]
    problems: list[str] = []
    for name, entry in stages.items():
        if name not in STAGE_FILES:
            problems.append(f"{name}: unknown stage (stages are {', '.join(STAGE_FILES)})")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{name}: must be an object")
            continue
        _, entry_problems = build(StageRecord, entry, Source("stage"), (name,))
        problems.extend(f"{p.path}: {p.message}" for p in entry_problems)
        if not _own_file_name(name, entry.get("file")):
            # A stage file is always ours, inside the run folder: never a path taken from the record.
            problems.append(f"{name}.file: must be {STAGE_FILES[name]!r} or null, got {entry.get('file')!r}")
        for i, screen in enumerate(entry.get("screens") or []):
            if not (isinstance(screen, dict) and _own_file_name("final", screen.get("file"))
                    and name == "final"):
                problems.append(f"{name}.screens[{i}]: must name a monitor file like 05_final_dp-1.png")
    return problems


def _screen_problems(screens: Any) -> list[str]:
    if not isinstance(screens, list) or len(screens) > MAX_MONITORS:
        return [f"screens: must be a list of at most {MAX_MONITORS} monitors"]
    problems = []
    for i, screen in enumerate(screens):
        if not (isinstance(screen, dict) and set(screen) == {"name", "width", "height", "x", "y"}):
            problems.append(f"screens[{i}]: must be {{name, width, height, x, y}}")
        elif problem := screen_problem(**screen):
            problems.append(f"screens[{i}]: {problem}")
    return problems


def _own_file_name(stage: str, file: Any) -> bool:
    if file is None or file == STAGE_FILES[stage]:
        return True
    return stage == "final" and isinstance(file, str) and bool(SCREEN_FILE.fullmatch(file))


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
