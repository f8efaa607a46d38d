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

.PHONY: fuzz demo test venv lint typecheck protos lint-protos pytest clean oip-client

venv: $(STAMP)

$(STAMP): requirements-dev.txt $(addsuffix /pyproject.toml,$(patsubst %/,%,$(DISTS)))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-build-isolation $(addprefix -e ,$(DISTS))
	@touch $@

demo: venv
	$(BIN)/gantry demo

test: venv lint-protos lint typecheck pytest

# The OIP test client (tritonclient, protobuf < 7) lives in its own venv; the OIP tests
# drive it as a subprocess and fail (never skip) without it.
OIP_VENV := .tools/oip-venv
OIP_STAMP := $(OIP_VENV)/.installed

oip-client: $(OIP_STAMP)

$(OIP_STAMP): requirements-oip-client.txt
	@test -x $(OIP_VENV)/bin/python || $(PYTHON) -m venv $(OIP_VENV)
	$(OIP_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-oip-client.txt
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

# One mypy run per unit: test modules of different units may share names (conftest).
UNITS := $(patsubst %/,%,$(DISTS)) tests scripts benchmarks

typecheck: venv
	@set -e; for unit in $(UNITS); do \
	  files=$$(find $$unit -name '*.py' -not -path '*/gantry/proto/*' -not -path '*/node_modules/*'); \
	  if [ -n "$$files" ]; then echo "mypy $$unit"; MYPYPATH=$(SERVICE_SRC) $(BIN)/mypy $$files; fi; \
	done

pytest: venv oip-client
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .tools .build .mypy_cache .ruff_cache .pytest_cache
