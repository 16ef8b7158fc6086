"""run.json as untrusted data: its vocabulary, and a validator that reports every problem at once.

A run folder can be copied from another machine or edited by hand, so `--resume` treats its
run.json like any config file: bounded, strictly shaped, and only ever *data*. A record that is not
a run of this program (foreign keys, wrong types, unknown format) is refused with a ConfigError
(exit 3) naming each problem; nothing in it is executed, and the settings that could execute, write
or connect anywhere come from the user's current config (`Settings.with_recipe_of`).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from ai_wallpaper.config.schema import Source, build
from ai_wallpaper.config.settings import Settings
from ai_wallpaper.core.errors import ConfigError
from ai_wallpaper.scene.plan import Plan

RUN_JSON = "run.json"
RECORD_FORMAT = 1  # written as "format"; records from before it have none and are read as format 1
MAX_RECORD_BYTES = 4 * 2**20  # a real run.json is a few KiB
# The id `generate` and the daemon give a run: local time and 6 hex digits. Also a folder name,
# so it must never hold a path separator or "..".
RUN_ID_PATTERN = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
TRIGGERS = ("manual", "schedule", "catch-up", "next")
RUN_STATUSES = ("running", "success", "failed", "cancelled")
STAGE_STATUSES = ("done", "skipped")
STAGE_FILES: dict[str, str] = {
    "base": "01_base.png",
    "refined": "02_refined.png",
    "upscaled": "03_upscaled_8k.png",
    "enhanced": "04_enhanced_8k.png",
    "final": "05_final_4k.png",
}
_REQUIRED = ("run_id", "status", "plan", "settings", "stages")
_OPTIONAL = ("format", "trigger", "created", "settings_fingerprint", "versions", "models", "self_test",
             "finished", "error", "final", "intermediates_kept")
_MAX_SIDE = 65536


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.urandom(3).hex()}"


def is_run_id(value: object) -> bool:
    return isinstance(value, str) and RUN_ID_PATTERN.fullmatch(value) is not None


def read_record(file: Path) -> dict[str, Any]:
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
        record = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{where}: not valid JSON: {exc}") from None
    problems = record_problems(record, where)
    if problems:
        raise ConfigError(problems, hint=f"{where} is not a run of this program; start a new run instead")
    return dict(record)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def record_problems(record: Any, where: str) -> list[str]:
    if not isinstance(record, dict):
        return [f"{where}: expected a JSON object, got {type(record).__name__}"]
    problems: list[str] = []

    def bad(key: str, message: str) -> None:
        problems.append(f"{where}: {key}: {message}")

    for key in sorted(set(record) - {*_REQUIRED, *_OPTIONAL}):
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
        if key in record and not isinstance(record[key], bool):
            bad(key, "must be true or false")
    for key in ("versions", "models"):
        if key in record and not isinstance(record[key], dict):
            bad(key, "must be an object")
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
    seed = plan.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        problems.append(f"seed: must be an integer from 0 to 2**63-1, got {seed!r}")
    for key in ("base_size", "upscaled_size", "final_size"):
        size = plan.get(key)
        if not (isinstance(size, dict) and set(size) == {"width", "height"}
                and all(_int_in(size[k], 1, _MAX_SIDE) for k in ("width", "height"))):
            problems.append(f"{key}: must be {{width, height}} in pixels (1..{_MAX_SIDE})")
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
        if entry.get("status") not in STAGE_STATUSES:
            problems.append(f"{name}.status: must be one of {', '.join(STAGE_STATUSES)}")
        if entry.get("file") not in (None, STAGE_FILES[name]):
            # A stage file is always ours, inside the run folder: never a path taken from the record.
            problems.append(f"{name}.file: must be {STAGE_FILES[name]!r} or null, got {entry.get('file')!r}")
    return problems


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
