# stackyard — local toolchain and entry points. `make` (or `make help`) lists the targets.
# The logic lives in scripts/: bootstrap.py (setup), install_tools.py (pinned tools),
# local_env.py (the one definition of the local-mode environment).

SHELL := /bin/bash
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PYTHON ?= python3
VENV_BIN := $(ROOT)/.venv/bin
SANDBOX := $(ROOT)/.stackyard/sandbox
# Run a command under the local-mode environment (same source as `make env`).
IN_ENV := $(PYTHON) $(ROOT)/scripts/local_env.py --exec --
# Per-test ceiling so a hung test fails instead of eating CI's time; override: make test PYTEST_TIMEOUT=0
PYTEST_TIMEOUT ?= 900
PYTEST_ARGS ?=
# make up's ports: make up PORT=8081 SANDBOX_PORT=6444 (a taken port is reported with what holds it)
PORT ?= 8080
SANDBOX_PORT ?= 6443

# $(call run_pytest,ARGS[,ENV-RUNNER]): pytest exits 5 when it collected no test; that fails too.
define run_pytest
	rc=0; $(or $(2),$(IN_ENV)) $(VENV_BIN)/python -m pytest --timeout=$(PYTEST_TIMEOUT) $(1) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected no test (exit 5): failing" >&2; fi; \
	exit $$rc
endef

.PHONY: help setup env test test-cluster demo up sandbox bench clean

help: ## list the targets
	@echo "stackyard make targets:"
	@grep -E '^[a-z-]+:.*## ' $(lastword $(MAKEFILE_LIST)) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 16
	@echo 'For a local-mode shell: eval "$$(make -s env)"'

setup: ## create .venv, install pinned Python deps, tools and the Airflow DB (idempotent)
	@$(PYTHON) $(ROOT)/scripts/bootstrap.py

env: ## print export lines for a local-mode shell: eval "$(make -s env)"
	@$(PYTHON) $(ROOT)/scripts/local_env.py

test: setup ## setup, the layer rules (lint-imports), then the whole suite (each session: a temporary Airflow home)
	@$(IN_ENV) $(VENV_BIN)/lint-imports --no-cache --config $(ROOT)/.importlinter
	@$(call run_pytest,$(ROOT)/tests)

test-cluster: setup ## setup, then pytest -m cluster against the caller's KUBECONFIG
	@kc="$${KUBECONFIG:-$$HOME/.kube/config}"; \
	if [ ! -f "$${kc%%:*}" ]; then echo "make: test-cluster needs a kubeconfig: set KUBECONFIG (tried $$kc)" >&2; exit 2; fi; \
	STACKYARD_TEST_CLUSTER=1 $(call run_pytest,-m cluster $(ROOT)/tests,$(PYTHON) $(ROOT)/scripts/local_env.py --kubeconfig "$$kc" --exec --)

demo: setup ## setup, then `stackyard demo` (own state and Airflow home in .stackyard/demo/, fresh each run)
	@$(IN_ENV) $(VENV_BIN)/stackyard demo

up: setup ## Airflow standalone + kube sandbox + local stores, foreground; make up PORT=8080 SANDBOX_PORT=6443
	@$(IN_ENV) $(VENV_BIN)/python -m dev.local --port $(PORT) --sandbox-port $(SANDBOX_PORT)

sandbox: setup ## run the kube sandbox in the foreground on 127.0.0.1:SANDBOX_PORT (default 6443)
	@mkdir -p $(SANDBOX)
	@$(IN_ENV) $(VENV_BIN)/python -m kube_sandbox --host 127.0.0.1 --port $(SANDBOX_PORT) \
		--kubeconfig $(SANDBOX)/kubeconfig --snapshot $(SANDBOX)/snapshot.json

bench: setup ## run every bench/*/run.py, each printing its report
	@shopt -s nullglob; runs=($(ROOT)/bench/*/run.py); \
	if [ $${#runs[@]} -eq 0 ]; then echo "bench: no bench/*/run.py yet"; exit 0; fi; \
	rc=0; for r in "$${runs[@]}"; do \
		echo "== $${r#$(ROOT)/}"; $(IN_ENV) $(VENV_BIN)/python "$$r" || { echo "bench: $$r failed" >&2; rc=1; }; \
	done; exit $$rc

clean: ## remove all local state: .venv/ and .stackyard/
	rm -rf $(ROOT)/.venv $(ROOT)/.stackyard
