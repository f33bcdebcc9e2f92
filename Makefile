# riverguard — every target installs what it needs first (uv, the hash-pinned dev lock).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install uv test test-fast check lint demo dev bench lock clean tools

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# uv from pip when missing; where pip refuses to touch the system Python (PEP 668: Debian 12,
# Ubuntu 23.04 and later) into the user's site instead, which `python3 -m uv` then finds.
uv: ## install uv when it is missing (pip; under PEP 668 into the user site)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv 2>/dev/null \
	  || python3 -m pip install --quiet --user --break-system-packages uv
	@$(UV) --version >/dev/null

$(STAMP): requirements-dev.lock pyproject.toml | uv
	$(UV) venv --quiet --allow-existing --python 3.11 $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

install: $(STAMP) ## create .venv from requirements-dev.lock and install riverguard into it

tools: ## Debian tools the tests need (promtool; chromium + chromedriver for the console tests)
	@command -v promtool >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus chromium chromium-driver >/dev/null; }

check: lint ## the fast static gate: lint, types and import contracts (same as lint)

test-fast: install ## unit and doctest tests only: no servers, no child processes (under a minute)
	$(BIN)/pytest -m "not servers and not slow" -q

lint: install ## ruff, ruff format --check, mypy --strict, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install tools lint ## lint, then the whole test suite on embedded servers
	$(BIN)/pytest

demo: install ## the end-to-end demo on the embedded stack (report: riverguard-report.html)
	$(BIN)/riverguard demo

dev: install ## the service on embedded servers (Ctrl-C stops everything)
	$(BIN)/riverguard dev

bench: install ## every benchmark under bench/, regenerating BENCHMARKS.md
	$(BIN)/python bench/run_all.py

lock: ## recompile the hash-pinned locks from pyproject.toml
	UV="$(UV)" bash .ci/locks.sh

clean: ## remove the virtualenv
	rm -rf $(VENV)
