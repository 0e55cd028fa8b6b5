# The two commands a newcomer needs are `make test` and `make demo`; the rest are their parts.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# setuptools warns on every editable install that a folder named like the package may shadow it
# (it is the package): quiet, so that setup says only what it does.
PIP := $(BIN)/python -W "ignore:Editable installation" -m pip --quiet --disable-pip-version-check

.PHONY: help venv lint typecheck contracts unit e2e test controlplane cluster-up cluster-down demo run image lock soak bench bench-planner bench-parsing bench-cluster

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

# Setup says what it does on stderr: stdout stays the command's own (`make run | jq ...`).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { echo "==> creating $(VENV)" >&2; $(PYTHON) -m venv $(VENV) >&2; }
	@echo "==> installing custom-scheduler with its dev extra into $(VENV)" >&2
	@$(PIP) install --upgrade pip >&2
	@$(PIP) install -e '.[dev]' >&2
	@touch $@

venv: $(STAMP) ## create .venv and install the project (done by the other targets when needed)

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	@echo "==> installing the bench extra (matplotlib, for the plots) into $(VENV)"
	@$(PIP) install -e '.[dev,bench]'
	@touch $@

lint: $(STAMP) ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy

contracts: $(STAMP) ## the import contracts: the layers, and a core with no client, async or logging library
	$(BIN)/lint-imports

unit: $(STAMP) ## the fast tests, no control plane
	$(BIN)/pytest tests/unit

e2e: $(STAMP) controlplane ## the end-to-end tests on the local control plane
	$(BIN)/pytest tests/e2e

test: lint typecheck contracts ## everything: lint, types, import contracts, unit and end-to-end tests
	@$(MAKE) --no-print-directory controlplane || { \
	  if [ "$${CI:-}" = true ]; then echo "error: the control plane could not be built (CI=true needs it)"; exit 1; fi; \
	  echo "warning: the control plane could not be built; end-to-end tests will be skipped"; }
	$(BIN)/pytest

controlplane: ## build etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (cached)
	@hack/build.sh

cluster-up: $(STAMP) controlplane ## start the local control plane and print the KUBECONFIG line
	@$(BIN)/python -m tests.harness.controlplane up

cluster-down: $(STAMP) ## stop the local control plane
	@$(BIN)/python -m tests.harness.controlplane down

# Not echoed: its output is the scheduler's log lines and nothing else (`make run | jq ...`).
run: $(STAMP) ## run the scheduler against $KUBECONFIG, serving /metrics on :10251 (ARGS="--dry-run ..." adds flags)
	@$(BIN)/custom-scheduler run $(ARGS)

demo: $(STAMP) controlplane ## SPEC section 11 on a local control plane with two simulated nodes
	@$(BIN)/python -m tests.demo

bench-planner: $(STAMP) ## plan() speed on generated clusters, written to BENCHMARKS.md
	$(BIN)/python -m tests.bench.planner

MINUTES ?= 10
soak: $(STAMP) controlplane ## random churn for MINUTES (default 10) with a checker; prints the report
	$(BIN)/python -m tests.soak --minutes $(MINUTES)

LOCK_STAMP := $(VENV)/.installed-lock
$(LOCK_STAMP): $(STAMP)
	@echo "==> installing the lock extra (uv, to pin the image's dependencies) into $(VENV)"
	@$(PIP) install -e '.[dev,lock]'
	@touch $@

# Python 3.11 on Linux, as the image; every file of each pinned version keeps its hash, so the
# lock holds for amd64 and arm64 alike.
lock: $(LOCK_STAMP) ## pin pyproject.toml's runtime dependencies, with hashes, into requirements.lock (the image's)
	$(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	  --python-platform linux --custom-compile-command "make lock" --output-file requirements.lock

IMAGE ?= custom-scheduler:0.1.0
image: ## build the container image with podman or docker (IMAGE=name:tag)
	@if command -v podman >/dev/null 2>&1; then podman build -t $(IMAGE) -f Containerfile .; \
	elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then docker build -t $(IMAGE) -f Containerfile .; \
	else echo "make image needs podman or a running docker engine; none here" >&2; exit 1; fi

bench-parsing: $(STAMP) ## API objects into the client's models vs slim dataclasses, to BENCHMARKS.md
	$(BIN)/python -m tests.bench.parsing

bench-cluster: $(BENCH_STAMP) controlplane ## ours beside kube-scheduler on the local control plane (QUICK=1: minutes)
	$(BIN)/python -m tests.bench.cluster $(if $(QUICK),--quick)

bench: bench-planner bench-parsing bench-cluster ## all benchmarks, written to BENCHMARKS.md (QUICK=1: a few minutes)
