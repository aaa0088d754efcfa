# synthvis: `make train` (set up + CPU quickstart: the method against the baseline) and `make test` (set up +
# fast tests) are the whole set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned here, not in pyproject: on this CPU machine torch==2.13.0 is the local CPU build (an unpinned
# torch pulls a multi-GB CUDA build). On a GPU machine: make setup TORCH_SPEC="torch==2.13.0 --index-url ..."
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.synthvis-installed
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup train test test-slow test-all doctor bench lint clean-cache

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e ".[dev,joblib,slurm]"
	touch $(STAMP)

setup: $(STAMP) ## create/refresh the virtual environment

train: setup ## the CPU quickstart, method against baseline (two jobs, one report); Hydra overrides via ARGS="..."
	$(BIN)/python train.py -m sweep=baseline_vs_method $(ARGS)

test: setup ## fast tests
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: setup ## end-to-end, multirun and multi-process tests
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

doctor: setup ## report Python, torch/CUDA, MuJoCo GL backend, dm_control, Procgen
	$(BIN)/synthvis-doctor

bench: setup ## throughput benchmarks (results go in BENCHMARKS.md by hand)
	$(BIN)/python bench/env_render.py
	$(BIN)/python bench/datamodule_throughput.py

lint: setup
	$(BIN)/ruff check synthvis tests bench train.py
