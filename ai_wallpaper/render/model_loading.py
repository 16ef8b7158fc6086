"""Loading the SDXL base, the optional refiner and the 4x upscaler onto the chosen device.

Importing this module does not import torch; the loaders import torch/diffusers/spandrel when called
(the device decision and memory switches are in `devices.py`). Every source kind ends in diffusers' own loaders:
builtin and local directories and cached hub ids through `from_pretrained(local_files_only=True)`,
single files through `from_single_file(config=<local dir>)`. The built-in tiny model is built to
disk first and then loaded exactly like a user's directory, so the self-test covers the real path.
`models.vae` is loaded the same ways (a single VAE file read weights-only, with the VAE config of the
pipeline it goes into) and passed as `vae=`; its config's scaling/shift/force_upcast are used as they are.
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path
from typing import Any, Literal

from ai_wallpaper.catalog.model_files import first_line, read_state_dict
from ai_wallpaper.catalog.model_fingerprints import file_sha256
from ai_wallpaper.catalog.model_layout import VAE_HINT, check_vae_keys
from ai_wallpaper.catalog.model_sources import ModelSource, resolve_source
from ai_wallpaper.config.render_settings import MemoryOptions, ModelSettings
from ai_wallpaper.core import log
from ai_wallpaper.core.errors import ModelError
from ai_wallpaper.core.paths import Paths
from ai_wallpaper.core.untrusted_input import loads_json
from ai_wallpaper.render.devices import DeviceChoice, apply_determinism, apply_memory_options, choose_device

logger = log.get(__name__)
SdxlRole = Literal["base", "refiner"]
# Which directory each loaded pipeline came from, so a refiner can tell whether the base's
# text_encoder_2 and VAE are byte-identical to its own and can be shared.
_LOADED_FROM: weakref.WeakKeyDictionary[Any, Path] = weakref.WeakKeyDictionary()
_SHAREABLE = ("text_encoder_2", "vae")
# The models.vae each pipeline was given, so the refiner reuses the base's copy of the same VAE.
_VAE_OVERRIDE: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


# --- SDXL ----------------------------------------------------------------------------------------


def _import_diffusers() -> Any:
    import diffusers
    import transformers  # noqa: F401  (imported so its progress bars and logs are routed too)

    log.route_library_logs()
    return diffusers


def _local_dir(source: ModelSource, paths: Paths) -> Path | None:
    """The on-disk diffusers directory of a source, building the built-in one on first use."""
    if source.kind == "builtin":
        from ai_wallpaper.catalog.builtin import ensure_builtin_sdxl

        assert source.builtin_name is not None
        return ensure_builtin_sdxl(paths.builtin_models_dir, source.builtin_name)
    if source.kind == "dir" or (source.kind == "hub" and source.revision is not None):
        return Path(source.location)
    return None


def _variant(directory: Path, choice: DeviceChoice) -> str | None:
    """"fp16" when those files exist and either fp16 runs or they are the only UNet weights there."""
    unet_files = [p.name for p in directory.glob("unet/*") if p.suffix in (".safetensors", ".bin")]
    fp16 = [n for n in unet_files if ".fp16." in n]
    if fp16 and (choice.dtype_name == "float16" or len(fp16) == len(unet_files)):
        return "fp16"
    return None


def load_sdxl(spec: str | ModelSource, role: SdxlRole, models: ModelSettings, paths: Paths, *,
              choice: DeviceChoice | None = None, share_with: Any = None) -> Any:
    """StableDiffusionXLPipeline (base) or StableDiffusionXLImg2ImgPipeline (refiner), ready to run.

    share_with: the loaded base pipeline; the refiner then reuses its text_encoder_2 and VAE when
    they are byte-identical to its own (the official SDXL pair), saving ~1.5 GB of GPU memory, and
    its models.vae VAE when one is set.
    """
    source = spec if isinstance(spec, ModelSource) else resolve_source(spec, role, models, paths)
    choice = choice or choose_device(models.device, models.dtype)
    apply_determinism(models.deterministic, choice)
    diffusers = _import_diffusers()
    cls = (diffusers.StableDiffusionXLPipeline if role == "base"
           else diffusers.StableDiffusionXLImg2ImgPipeline)
    started = time.perf_counter()
    directory = _local_dir(source, paths)
    kwargs: dict[str, Any] = {"dtype": choice.dtype}
    if models.vae:
        kwargs["vae"] = _override_vae(source, models, paths, choice, share_with)
    if share_with is not None and directory is not None:
        kwargs.update(_shareable_components(share_with, directory, models.memory, paths, given=set(kwargs)))
    try:
        if directory is not None:
            # builtin, local dirs and cached hub ids: all from disk, never the network.
            pipe = cls.from_pretrained(str(directory), local_files_only=True,
                                       variant=_variant(directory, choice), **kwargs)
        elif source.kind == "hub":
            pipe = _from_hub(cls, source, choice, kwargs)
        else:
            pipe = cls.from_single_file(source.location, config=_single_file_config(source, paths),
                                        local_files_only=_config_is_local(source), **kwargs)
    except ModelError:
        raise
    except Exception as err:  # diffusers/hub raise many types; the user needs one clear line
        raise ModelError(f"{source.setting}: could not load {source.label}: {first_line(err)}",
                         hint=_load_hint(source)) from err
    if directory is not None:
        _LOADED_FROM[pipe] = directory
    if models.vae:
        _VAE_OVERRIDE[pipe] = models.vae
    applied = apply_memory_options(pipe, models.memory, choice)
    logger.info("model.loaded", role=role, source=source.label, device=choice.device, dtype=choice.dtype_name,
                memory=applied, shared=sorted(k for k in _SHAREABLE if k in kwargs), vae=models.vae,
                seconds=round(time.perf_counter() - started, 2))
    return pipe


def _from_hub(cls: Any, source: ModelSource, choice: DeviceChoice, kwargs: dict[str, Any]) -> Any:
    """A hub id that is not cached (downloads are on): prefer the fp16 variant, fall back cleanly."""
    if choice.dtype_name == "float16":
        try:
            return cls.from_pretrained(source.hub_id, local_files_only=False, variant="fp16", **kwargs)
        except (OSError, ValueError) as err:
            logger.info("model.no_fp16_variant", hub_id=source.hub_id, detail=first_line(err))
    return cls.from_pretrained(source.hub_id, local_files_only=False, **kwargs)


def _single_file_config(source: ModelSource, paths: Paths) -> str:
    config = source.config
    if config is None:  # resolve_source always sets it for single SDXL files
        raise ModelError(f"{source.setting}: no config for {source.location}",
                         hint=f"set models.{source.role}_config to a local diffusers directory")
    if config.startswith("builtin:"):
        from ai_wallpaper.catalog.builtin import ensure_builtin_sdxl

        return str(ensure_builtin_sdxl(paths.builtin_models_dir, config.removeprefix("builtin:")))
    return config


def _config_is_local(source: ModelSource) -> bool:
    config = source.config
    return config is not None and (config.startswith("builtin:") or Path(config).is_dir())


def _load_hint(source: ModelSource) -> str:
    if source.kind == "file":
        return (f"check that {source.location} is a complete SDXL {source.role} checkpoint matching its "
                f"configs ({source.config_origin}); set models.{source.role}_config to the right "
                "diffusers directory")
    if source.kind == "hub" and source.revision is None:
        return "check the hub id and your network, or download the model and point the setting at it"
    return f"check that {source.location} is a complete diffusers SDXL {source.role} directory"


def _shareable_components(base: Any, refiner_dir: Path, memory: MemoryOptions,
                          paths: Paths, given: set[str]) -> dict[str, Any]:
    base_dir = _LOADED_FROM.get(base)
    if base_dir is None or memory.cpu_offload == "sequential":
        # Sequential offload moves each weight on its own hook; sharing modules across pipelines breaks that.
        return {}
    shared = {}
    for name in (n for n in _SHAREABLE if n not in given):
        module = getattr(base, name, None)
        if module is not None and _same_component(base_dir / name, refiner_dir / name, paths):
            shared[name] = module
    return shared


def _override_vae(pipe_source: ModelSource, models: ModelSettings, paths: Paths, choice: DeviceChoice,
                  share_with: Any) -> Any:
    """The AutoencoderKL of models.vae for the pipeline `pipe_source`, or the base's copy of it."""
    assert models.vae
    if (share_with is not None and models.memory.cpu_offload != "sequential"
            and _VAE_OVERRIDE.get(share_with) == models.vae):
        return share_with.vae
    source = resolve_source(models.vae, "vae", models, paths)
    autoencoder = _import_diffusers().AutoencoderKL
    try:
        if source.kind == "file":  # weights-only read here; diffusers never unpickles the file itself
            config, local = _pipe_config(pipe_source, paths)
            return autoencoder.from_single_file(_vae_state_dict(source), config=config, subfolder="vae",
                                                local_files_only=local, dtype=choice.dtype)
        if source.path is not None:  # a folder, or a hub id in the cache
            directory = source.path
            fp16 = any(directory.glob("diffusion_pytorch_model.fp16.*"))
            full = any(directory.glob("diffusion_pytorch_model.safetensors"))
            variant = "fp16" if fp16 and (choice.dtype_name == "float16" or not full) else None
            return autoencoder.from_pretrained(str(directory), local_files_only=True, variant=variant,
                                               dtype=choice.dtype)
        return autoencoder.from_pretrained(source.hub_id, local_files_only=False, dtype=choice.dtype)
    except ModelError:
        raise
    except Exception as err:  # shape mismatches with the config, damaged files, hub errors
        raise ModelError(f"{source.setting}: could not load {source.label}: {first_line(err)}",
                         hint=VAE_HINT) from err


def _pipe_config(source: ModelSource, paths: Paths) -> tuple[str, bool]:
    """(diffusers config location, is it local) of a pipeline: where a single VAE file takes its config."""
    directory = _local_dir(source, paths)
    if directory is not None:
        return str(directory), True
    if source.kind == "hub":
        return str(source.hub_id), False
    return _single_file_config(source, paths), _config_is_local(source)


def _vae_state_dict(source: ModelSource) -> dict[str, Any]:
    state = read_state_dict(Path(source.location), source.setting)
    while isinstance(state.get("state_dict"), dict):  # .ckpt files nest the tensors
        state = state["state_dict"]
    check_vae_keys({k: list(getattr(v, "shape", [])) for k, v in state.items()}, source.setting,
                   Path(source.location))
    return state


def _same_component(a: Path, b: Path, paths: Paths) -> bool:
    """Same config (ignoring bookkeeping keys) and byte-identical weight files."""
    if a.resolve() == b.resolve():
        return True
    try:
        configs = [loads_json((d / "config.json").read_text(encoding="utf-8")) for d in (a, b)]
    except (OSError, ValueError):
        return False
    for config in configs:
        for key in ("_name_or_path", "_diffusers_version", "transformers_version", "dtype", "torch_dtype"):
            config.pop(key, None)
    if configs[0] != configs[1]:
        return False
    weights = [sorted(p for p in d.iterdir() if p.suffix in (".safetensors", ".bin")) for d in (a, b)]
    if [p.name for p in weights[0]] != [p.name for p in weights[1]] or not weights[0]:
        return False
    return all(_content_id(x, paths) == _content_id(y, paths) for x, y in zip(*weights, strict=True))


def _content_id(file: Path, paths: Paths) -> str:
    # Hugging Face cache files are symlinks to blobs named by their sha256: free exact identity.
    target = file.resolve()
    if file.is_symlink() and target.parent.name == "blobs" and len(target.name) == 64:
        return target.name
    return file_sha256(file, paths.cache_dir)


# --- upscaler ------------------------------------------------------------------------------------


def load_upscaler(spec: str | ModelSource, models: ModelSettings, paths: Paths, *, half: bool = True,
                  choice: DeviceChoice | None = None) -> Any:
    """A spandrel ImageModelDescriptor in eval mode on the device (fp16 on CUDA where supported).

    Its `.scale` is reported, not checked: the pipeline compares it with the configured upscale factor.
    """
    source = spec if isinstance(spec, ModelSource) else resolve_source(spec, "upscaler", models, paths)
    choice = choice or choose_device(models.device, models.dtype)
    apply_determinism(models.deterministic, choice)
    if source.kind == "builtin":
        from ai_wallpaper.catalog.builtin import ensure_builtin_upscaler

        file = ensure_builtin_upscaler(paths.builtin_models_dir)
    else:
        file = Path(source.location)
    import torch
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    hint = ("use a spandrel-supported upscaler (.pth/.safetensors: Real-ESRGAN x4plus, 4x-UltraSharp, "
            "SwinIR, HAT...); SDXL checkpoints, LoRAs and VAEs cannot upscale")
    # Never spandrel's load_from_file: it calls torch.jit.load on every .pt (see model_files.py).
    state_dict = read_state_dict(file, source.setting)
    try:
        descriptor = ModelLoader().load_from_state_dict(state_dict)
    except UnsupportedModelError as err:
        raise ModelError(f"{source.setting}: {file} is not a supported upscaler model (spandrel does not "
                         "recognise its architecture)", hint=hint) from err
    except Exception as err:  # shape/key mismatches inside an architecture's loader
        raise ModelError(f"{source.setting}: cannot build an upscaler from {file}: {first_line(err)}",
                         hint=hint) from err
    if not isinstance(descriptor, ImageModelDescriptor):
        raise ModelError(f"{source.setting}: {file} is a {descriptor.purpose} model, not an image upscaler",
                         hint=hint)
    if descriptor.purpose == "FaceSR" or descriptor.scale < 2:
        raise ModelError(f"{source.setting}: {file} is a {descriptor.architecture.name} {descriptor.purpose} "
                         f"model with scale {descriptor.scale}, not a general upscaler", hint=hint)
    descriptor.eval()
    descriptor.to(choice.device)
    if half and choice.device == "cuda" and descriptor.supports_half:
        descriptor.to(torch.float16)
    logger.info("upscaler.loaded", source=source.label, architecture=descriptor.architecture.name,
                scale=descriptor.scale, purpose=descriptor.purpose, device=choice.device,
                dtype=str(descriptor.dtype).removeprefix("torch."))
    return descriptor
