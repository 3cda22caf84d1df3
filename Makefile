# Fathom: the two commands a newcomer needs are `make demo` and `make test`.
# Everything they need is installed here, into virtual environments inside the checkout.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BVENV := .venv-blender
PY := $(VENV)/bin/python
BPY := $(BVENV)/bin/python
PIP_FLAGS := -q --disable-pip-version-check

.PHONY: demo test test-engine test-server test-blender dist bench bench-server venvs clean

venvs: $(VENV)/.stamp $(BVENV)/.stamp

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

demo: venvs
	$(PY) scripts/demo.py

test: venvs
	$(PY) -m pytest tests/engine tests/server
	$(BPY) -m pytest tests/blender

test-engine: $(VENV)/.stamp
	$(PY) -m pytest tests/engine

test-server: $(VENV)/.stamp
	$(PY) -m pytest tests/server

test-blender: venvs
	$(BPY) -m pytest tests/blender

# One extension zip per platform in dist/, wheels fetched by pinned version.
dist: venvs
	$(PY) scripts/fetch_wheels.py --all
	$(BPY) scripts/build_extension.py --split-platforms

bench: $(VENV)/.stamp
	$(PY) -m bench.engine_bench

bench-server: $(VENV)/.stamp
	$(PY) -m bench.server_bench

clean:
	rm -rf dist build out .pytest_cache
