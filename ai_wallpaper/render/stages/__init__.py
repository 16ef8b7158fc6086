"""Processing stages. Each module: a typed, frozen config and a pure core function

    run_<stage>(image_or_latents, model, cfg, progress, cancel) -> image

that does no file I/O and loads no model; `pipeline.py` is the thin wrapper that does both.
"""
