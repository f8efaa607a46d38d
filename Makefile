# The two commands: `make demo` runs Gantry's main job, `make test` runs every check.
# Both create/update the virtualenv themselves.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DISTS := libs/gantry-proto libs/gantry-core libs/gantry-models libs/gantry-loop kernels $(sort $(dir $(wildcard services/*/pyproject.toml)))
STAMP := $(VENV)/.gantry-installed

fuzz: venv
	GANTRY_FUZZ_EXAMPLES=200 $(BIN)/pytest -q tests/security

.PHONY: fuzz demo test test-fast test-durations venv lock lock-upgrade lock-check lint typecheck protos lint-protos pytest clean oip-client sandbox-tools validate-terminal validate-notebook

# ---- the lock (docs/development.md) -------------------------------------------------------
# requirements.lock pins every third-party distribution of the workspace (dev tools and
# all distributions' dependencies, Python 3.11 on Linux x86_64, the CPU build of torch):
# `make venv`, CI and the CPU images install from it. requirements-gpu.lock pins the same
# distributions for the GPU images (Python 3.12, the CUDA build of torch from PyPI, vLLM).
# Both target glibc 2.36 (Debian bookworm), so they also hold on Ubuntu 24.04.
# `make lock` regenerates both, keeping every pin the inputs still allow;
# `make lock-upgrade` moves everything to the newest allowed versions.
LOCK := requirements.lock
GPU_LOCK := requirements-gpu.lock
WORKSPACE := $(patsubst %/,%,$(DISTS))
WORKSPACE_NAMES := $(shell sed -n 's/^name = "\(.*\)"/\1/p' $(addsuffix /pyproject.toml,$(WORKSPACE)))
UV_VERSION := $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' requirements-dev.txt)
UV := $(BIN)/uv
TORCH_VERSION := $(shell sed -n 's/^torch==\([^ ]*\).*/\1/p' requirements-dev.txt)
HATCHLING := $(shell grep '^hatchling==' requirements-dev.txt)
# Where the CPU build of torch comes from (uv does not read pip's config): the wheel
# directory pip is configured with, else PyTorch's CPU wheel page.
TORCH_CPU_WHEELS ?= $(or $(PIP_FIND_LINKS),https://download.pytorch.org/whl/cpu/torch/)
LOCK_TMP := .build/lock
CPU_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_36 --find-links $(TORCH_CPU_WHEELS)
GPU_TARGET := --python-version 3.12 --python-platform x86_64-manylinux_2_36
COMPILE := $(UV) pip compile --no-config --quiet --custom-compile-command "make lock" \
  $(addprefix --no-emit-package ,$(WORKSPACE_NAMES))
editable = $(foreach d,$(1),'-e ./$(d)')

# $(call compile-locks,<dir>,<uv flags>): one shell command writing both locks into <dir>.
# The inputs are the dev pins plus the workspace distributions as editables (so their own
# names never go to an index); uv keeps whatever pins already in <dir> the inputs allow.
compile-locks = mkdir -p $(LOCK_TMP) \
  && printf -- '%s\n' $(call editable,$(WORKSPACE)) > $(LOCK_TMP)/workspace.in \
  && printf -- '%s\n' torch==$(TORCH_VERSION) $(HATCHLING) $(call editable,$(WORKSPACE)) \
       $(if $(wildcard services/rollout/pyproject.toml),$(call editable,services/rollout[vllm])) \
       > $(LOCK_TMP)/gpu-images.in \
  && { $(COMPILE) $(2) $(CPU_TARGET) requirements-dev.txt $(LOCK_TMP)/workspace.in -o $(1)/$(LOCK) & cpu=$$!; \
       $(COMPILE) $(2) $(GPU_TARGET) $(LOCK_TMP)/gpu-images.in -o $(1)/$(GPU_LOCK) & gpu=$$!; \
       wait $$cpu; a=$$?; wait $$gpu; b=$$?; [ $$a = 0 ] && [ $$b = 0 ]; }
CHECKED := $(LOCK_TMP)/check

lock: $(UV)
	@$(call compile-locks,.,)

lock-upgrade: $(UV)
	@$(call compile-locks,.,--upgrade)

# Fails when a pyproject.toml or requirements-dev.txt asks for something the locks do not
# pin: recompile into a copy (from uv's cache first, then against the index) and compare
# the pins (the `# via` notes may lag behind; `make lock` refreshes them).
same-pins = cmp -s <(grep -v '^ *\#' $(1)) <(grep -v '^ *\#' $(2))
diff-pins = diff -u --label $(1) --label $(2) <(grep -v '^ *\#' $(1)) <(grep -v '^ *\#' $(2))
lock-check: $(UV)
	@rm -rf $(CHECKED) && mkdir -p $(CHECKED) && cp $(LOCK) $(GPU_LOCK) $(CHECKED)/
	@{ ($(call compile-locks,$(CHECKED),--offline)) 2>/dev/null \
	   && $(call same-pins,$(LOCK),$(CHECKED)/$(LOCK)) \
	   && $(call same-pins,$(GPU_LOCK),$(CHECKED)/$(GPU_LOCK)); } \
	|| { cp $(LOCK) $(GPU_LOCK) $(CHECKED)/ && $(call compile-locks,$(CHECKED),) \
	   && $(call diff-pins,$(LOCK),$(CHECKED)/$(LOCK)) \
	   && $(call diff-pins,$(GPU_LOCK),$(CHECKED)/$(GPU_LOCK)); } \
	|| { echo "lock-check: $(LOCK)/$(GPU_LOCK) do not match the pyproject.toml files and" \
	     "requirements-dev.txt: run 'make lock' and commit the result"; exit 1; }
	@echo "lock-check: $(LOCK) and $(GPU_LOCK) match their inputs"

# uv installs the lock into the virtualenv (pip is there too, for one-off experiments).
$(UV):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)

venv: $(STAMP)

$(STAMP): $(LOCK) requirements-nodeps.txt $(addsuffix /pyproject.toml,$(WORKSPACE)) | $(UV)
	$(UV) pip install --no-config --quiet --python $(BIN)/python \
	  --find-links $(TORCH_CPU_WHEELS) -r $(LOCK)
	$(UV) pip install --no-config --quiet --python $(BIN)/python --no-deps -r requirements-nodeps.txt
	$(UV) pip install --no-config --quiet --python $(BIN)/python --no-deps --no-build-isolation \
	  $(addprefix -e ,$(WORKSPACE))
	@touch $@

demo: venv
	$(BIN)/gantry demo

test: venv lock-check lint-protos lint typecheck pytest

# The OIP test client (tritonclient, protobuf < 7) lives in its own venv; the OIP tests
# drive it as a subprocess and fail (never skip) without it.
OIP_VENV := .tools/oip-venv
OIP_STAMP := $(OIP_VENV)/.installed

oip-client: $(OIP_STAMP)

$(OIP_STAMP): requirements-oip-client.txt | $(UV)
	@test -x $(OIP_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(OIP_VENV)
	$(UV) pip install --no-config --quiet --python $(OIP_VENV)/bin/python -r requirements-oip-client.txt
	@touch $@

lint-protos:
	bash scripts/lint_protos.sh

protos: venv
	$(BIN)/python scripts/gen_protos.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

empty :=
space := $(empty) $(empty)
SERVICE_SRC := $(subst $(space),:,$(wildcard services/*/src))

# One mypy run per unit (test modules of different units share names: conftest), on two
# lanes; gantry-models first: it fills the cache with torch and transformers for the rest.
UNITS := libs/gantry-models $(filter-out libs/gantry-models,$(patsubst %/,%,$(DISTS))) tests scripts benchmarks

typecheck: venv
	@MYPYPATH=$(SERVICE_SRC) bash scripts/typecheck.sh $(BIN)/mypy $(UNITS)

# Whole test files go to one worker each (module-scoped servers start once); one worker per
# core. PYTEST_WORKERS=0 runs everything in this process (easier to debug).
PYTEST_WORKERS ?= auto
pytest: venv oip-client sandbox-tools
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# Files run longest first (root conftest.py, from test_durations.json): refresh the record
# after adding or changing slow tests (a full run, about 20 minutes).
test-durations: venv oip-client sandbox-tools
	@mkdir -p .build
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=0 | tee .build/pytest-durations.log
	$(BIN)/python scripts/test_durations.py .build/pytest-durations.log > test_durations.json

# The inner loop: the unit tests beside each package, without the ones marked slow (model
# training, process restarts, whole-stack runs). `make test` runs everything.
test-fast: venv oip-client sandbox-tools
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not slow" libs kernels services

# envfarm's sandboxes (docs/envfarm.md, "Sandboxes"): bubblewrap, and a system Python for
# the agent inside; installed from Debian when missing. The sandbox uid is a bare number
# (61000 by default) and needs no account.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Terminal tasks also use git and Python's sqlite3 module inside the sandbox.
sandbox-tools:
	@command -v bwrap >/dev/null && command -v git >/dev/null \
	  && /usr/bin/python3 -c 'import sqlite3' 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bubblewrap python3 git; }

# Every built-in terminal task through the full validation in bubblewrap (~5 min).
validate-terminal: venv sandbox-tools
	$(BIN)/python -m gantry.envfarm.terminal.validate

# Every notebook (DSGym) task's reference solution run in a bubblewrap sandbox (~10 min).
validate-notebook: venv sandbox-tools
	$(BIN)/python -m gantry.envfarm.notebook.validate

clean:
	rm -rf $(VENV) .tools .build .mypy_cache .mypy_cache-lane-* .ruff_cache .pytest_cache
