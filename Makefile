# Fathom: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need is installed here, into virtual environments inside the checkout.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BVENV := .venv-blender
BVENV45 := .venv-blender45
BVENV42 := .venv-blender42
PY := $(VENV)/bin/python
BPY := $(BVENV)/bin/python
BPY45 := $(BVENV45)/bin/python
BPY42 := $(BVENV42)/bin/python
# The real-Blender tier runs in a cached Debian 13 root (scripts/trixie_root.sh; FATHOM_TRIXIE_ROOT
# moves it), which needs root: sudo when make itself is not run as root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
ROOTFS := $(SUDO) bash scripts/trixie_root.sh
BPY52 := /opt/fathom/bpy52/bin/python
TINY_MODEL := out/tier/tiny.onnx
PIP_FLAGS := -q --disable-pip-version-check

.PHONY: demo test lint test-engine test-server test-blender test-window trixie-root dist bench bench-sequence bench-server venvs clean

venvs: $(VENV)/.stamp $(BVENV)/.stamp $(BVENV45)/.stamp $(BVENV42)/.stamp

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

# Blender 4.2 LTS, the oldest the manifest promises, for the smoke subset.
$(BVENV42)/.stamp: requirements/blender42.txt
	$(PYTHON) -m venv $(BVENV42)
	$(BPY42) -m pip install $(PIP_FLAGS) -r requirements/blender42.txt
	touch $@

# Only what the demo uses: not the Blender 4.5/4.2 venvs of the smoke tests.
demo: $(VENV)/.stamp $(BVENV)/.stamp
	$(PY) scripts/demo.py

test: venvs lint
	$(PY) -m pytest tests/engine tests/server
	$(BPY) -m pytest tests/blender
	$(BPY45) -m pytest tests/blender -m smoke
	$(BPY42) -m pytest tests/blender -m smoke
	$(MAKE) test-window

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
	$(BPY42) -m pytest tests/blender -m smoke

# The real-Blender tier, alone: Debian 13's windowed Blender 4.3 under Xvfb (tests/window), and
# the smoke subset on bpy 5.2.3 (Python 3.13), both inside the cached Debian 13 root.
test-window: trixie-root $(TINY_MODEL)
	$(PY) scripts/with_depth_server.py --tiny-model $(TINY_MODEL) -- \
	  $(ROOTFS) run env FATHOM_TINY_MODEL=$(CURDIR)/$(TINY_MODEL) $(BPY52) -m pytest -p no:cacheprovider tests/window
	$(ROOTFS) run env FATHOM_TINY_MODEL=$(CURDIR)/$(TINY_MODEL) $(BPY52) -m pytest -p no:cacheprovider tests/blender -m smoke

trixie-root:
	$(ROOTFS) build

# The tests' tiny model, built here with .venv's onnx: inside the Debian 13 root .venv cannot run.
$(TINY_MODEL): tests/tiny_model.py $(VENV)/.stamp
	mkdir -p $(dir $@)
	$(PY) -c "import sys; from tests.tiny_model import build_tiny_model; build_tiny_model(sys.argv[1])" $@

# One extension zip per platform in dist/, wheels fetched by pinned version.
dist: venvs
	$(PY) scripts/fetch_wheels.py --all
	$(BPY) scripts/build_extension.py --split-platforms

# The benchmark's PyTorch baseline (torch, CPU build), kept out of the test environment's requirements.
$(VENV)/.bench-stamp: $(VENV)/.stamp requirements/bench.txt
	$(PY) -m pip install $(PIP_FLAGS) -r requirements/bench.txt
	touch $@

bench: $(VENV)/.bench-stamp
	$(PY) -m bench.engine_bench
	$(PY) -m bench.main_thread_bench
	$(PY) -m bench.tiling_bench

bench-sequence: $(VENV)/.stamp
	$(PY) -m bench.sequence_bench

bench-server: $(VENV)/.stamp
	$(PY) -m bench.server_bench

clean:
	rm -rf dist build out .pytest_cache
