# Fathom: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need is installed here, into virtual environments inside the checkout.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BVENV := .venv-blender
BVENV45 := .venv-blender45
PY := $(VENV)/bin/python
BPY := $(BVENV)/bin/python
BPY45 := $(BVENV45)/bin/python
PIP_FLAGS := -q --disable-pip-version-check

.PHONY: demo test lint test-engine test-server test-blender dist bench bench-sequence bench-server venvs clean

venvs: $(VENV)/.stamp $(BVENV)/.stamp $(BVENV45)/.stamp

# Engine, server, tests and benchmarks.
$(VENV)/.stamp: requirements/dev.txt requirements/server.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements/dev.txt -r requirements/server.txt
	touch $@

# Real Blender (bpy) without onnxruntime or Pillow: the extension must bring its own.
$(BVENV)/.stamp: requirements/blender.txt
	$(PYTHON) -m venv $(BVENV)
	$(BPY) -m pip install $(PIP_FLAGS) -r requirements/blender.txt
	touch $@

# Blender 4.5 LTS for the smoke subset (tests marked "smoke").
$(BVENV45)/.stamp: requirements/blender45.txt
	$(PYTHON) -m venv $(BVENV45)
	$(BVENV45)/bin/python -m pip install $(PIP_FLAGS) -r requirements/blender45.txt
	touch $@

demo: venvs
	$(PY) scripts/demo.py

test: venvs lint
	$(PY) -m pytest tests/engine tests/server
	$(BPY) -m pytest tests/blender
	$(BPY45) -m pytest tests/blender -m smoke

# ruff (pyproject.toml): lint, then formatting, before any test runs.
lint: $(VENV)/.stamp
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test-engine: $(VENV)/.stamp
	$(PY) -m pytest tests/engine

test-server: $(VENV)/.stamp
	$(PY) -m pytest tests/server

test-blender: venvs
	$(BPY) -m pytest tests/blender
	$(BPY45) -m pytest tests/blender -m smoke

# One extension zip per platform in dist/, wheels fetched by pinned version.
dist: venvs
	$(PY) scripts/fetch_wheels.py --all
	$(BPY) scripts/build_extension.py --split-platforms

bench: $(VENV)/.stamp
	$(PY) -m bench.engine_bench

bench-sequence: $(VENV)/.stamp
	$(PY) -m bench.sequence_bench

bench-server: $(VENV)/.stamp
	$(PY) -m bench.server_bench

clean:
	rm -rf dist build out .pytest_cache
