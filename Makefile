# Two entry points, both used by the README quick start. Each creates .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test lint
install: $(STAMP)

# The main job: a full `generate --save-stages` run on the built-in offline self-test model.
demo: $(STAMP)
	$(VENV)/bin/ai-wallpaper generate --save-stages --no-wallpaper --model builtin:tiny --upscaler builtin:tiny --output out/demo-$$(date +%Y%m%d-%H%M%S)

# The whole test suite, with the linters and the type checker. .ci/run calls this.
test: $(STAMP)
	bash scripts/system-deps.sh
	$(VENV)/bin/ruff check ai_wallpaper tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest
