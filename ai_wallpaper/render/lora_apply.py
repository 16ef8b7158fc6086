"""Apply a LoRA stack to a diffusers SDXL pipeline for one run, and remove it without a trace.

    with applied_loras(pipe, plan.loras):
        image = pipe(...)            # also encode prompts inside: text-encoder LoRAs change them

Measured with peft 0.21.2 + diffusers 0.42.1 (tests/test_lora_apply.py keeps it true):
- `load_lora_weights(file, adapter_name=n)` wraps the targeted Linear layers in peft LoRA layers;
  reusing an adapter name raises, so every stack entry gets a fresh unique name.
- `delete_adapters(names)` alone already gives bit-identical output to the no-LoRA pipeline, but
  leaves the (empty) peft wrapper layers in place. When no adapters remain we therefore also call
  `unload_lora_weights()`, which puts the original torch Linear modules back: the module tree,
  parameter count and `get_list_adapters()` are exactly as before, however many stacks ran.
- We never fuse: `fuse_lora` without `unfuse_lora` bakes the LoRA into the weights for good.
Files are checked (exists, SDXL LoRA, not LoHa/LoKr, same sha256 as planned) before anything is
loaded, because a missing file otherwise surfaces as a misleading model-hub error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.scene.lora_files import check_file
from ai_wallpaper.scene.lora_library import sanitize
from ai_wallpaper.scene.plan import LoraChoice

logger = log.get(__name__)
ADAPTER_PREFIX = "aiw"


def preflight(stack: Sequence[LoraChoice]) -> None:
    """Raise ModelError listing every stack entry whose file cannot be applied."""
    problems: list[str] = []
    for choice in stack:
        status = check_file(Path(choice.file))
        if not status.ok:
            problems.append(f"LoRA {choice.name!r}: {status.message}")
        elif choice.sha256 and status.sha256 != choice.sha256:
            problems.append(f"LoRA {choice.name!r}: {choice.file} changed since the plan was made "
                            f"(sha256 {status.sha256[:12]}… != planned {choice.sha256[:12]}…)")
    if problems:
        raise ModelError("cannot apply the LoRA stack:\n" + "\n".join(f"  - {p}" for p in problems),
                         hint="fix or replace the files (see `ai-wallpaper loras validate`), or plan again")


def adapter_names(pipe: Any) -> set[str]:
    """Every adapter currently loaded on any of the pipeline's components."""
    getter = getattr(pipe, "get_list_adapters", None)
    if getter is None:
        return set()
    return {name for names in getter().values() for name in names}


@contextmanager
def applied_loras(pipe: Any, stack: Sequence[LoraChoice]) -> Iterator[None]:
    """Load the stack with its weights, yield, then remove it (also when the body raises)."""
    if not stack:
        yield
        return
    if not hasattr(pipe, "load_lora_weights"):
        raise ModelError(f"{type(pipe).__name__} cannot load LoRAs",
                         hint="LoRAs apply to the SDXL base pipeline")
    preflight(stack)
    before = adapter_names(pipe)
    loaded: list[str] = []
    try:
        for i, choice in enumerate(stack):
            name = f"{ADAPTER_PREFIX}{i}_{sanitize(choice.name)}_{uuid.uuid4().hex[:8]}"
            try:
                pipe.load_lora_weights(choice.file, adapter_name=name)
            except (ValueError, RuntimeError, KeyError, OSError) as exc:
                raise ModelError(f"LoRA {choice.name!r} ({choice.file}) failed to load: {exc}",
                                 hint="is it an SDXL LoRA for this base model? "
                                      "see `ai-wallpaper loras validate`") from exc
            loaded.append(name)
        pipe.set_adapters(loaded, adapter_weights=[float(c.weight) for c in stack])
        logger.info("LoRA stack applied", loras=[f"{c.name}@{c.weight:g}" for c in stack])
        yield
    finally:
        _remove(pipe, loaded, before)


def _remove(pipe: Any, loaded: list[str], before: set[str]) -> None:
    if not loaded:
        return
    try:
        pipe.delete_adapters(loaded)
        remaining = adapter_names(pipe)
        if not remaining:
            # Puts the original Linear modules back (delete alone leaves empty peft wrappers).
            pipe.unload_lora_weights()
        elif remaining - before:
            raise RuntimeError(f"adapters left behind: {sorted(remaining - before)}")
    except Exception as exc:
        raise ModelError(f"could not remove LoRA adapters {loaded}: {exc}",
                         hint="the pipeline may still carry LoRA effects; reload the model") from exc
    logger.debug("LoRA stack removed", adapters=loaded)
