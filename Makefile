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

# The alert and dashboard tests run promtool and a real Prometheus; the console tests drive a
# headless Chromium. They come from Debian packages, installed only when missing, and said first.
TOOL_PACKAGES := prometheus chromium chromium-driver
tools: ## Debian packages the tests need, when missing: prometheus (promtool), chromium, chromium-driver
	@if command -v promtool >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then exit 0; fi; \
	echo "make tools: the tests need promtool and a real Prometheus (alert and dashboard tests)"; \
	echo "            and headless Chromium + chromedriver (console tests): apt-get install $(TOOL_PACKAGES)"; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "make tools: not root, so nothing was installed. Run:  sudo apt-get install $(TOOL_PACKAGES)"; \
	  echo "            then make test again (or make test-fast, which needs none of them)."; \
	  exit 1; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make tools: no apt-get here; install promtool (Prometheus), Chromium and chromedriver yourself."; \
	  exit 1; \
	fi; \
	echo "make tools: installing $(TOOL_PACKAGES) with apt-get (as root)..."; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TOOL_PACKAGES) >/dev/null

check: lint ## the fast static gate: lint, types and import contracts (same as lint)

test-fast: install ## unit and doctest tests only: no servers, no child processes (about a minute)
	$(BIN)/pytest -m "not servers and not slow" -q

lint: install ## ruff, ruff format --check, mypy --strict, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install tools lint ## lint, then the whole test suite on embedded servers (make tools first)
	$(BIN)/pytest

demo: install ## the end-to-end demo on the embedded stack (report: riverguard-report.html)
	$(BIN)/riverguard demo

dev: install ## the service on embedded servers; prints `export RG=... KEY=...` (Ctrl-C stops everything)
	$(BIN)/riverguard dev

bench: install ## every benchmark under bench/, regenerating BENCHMARKS.md
	$(BIN)/python bench/run_all.py

lock: ## recompile the hash-pinned locks from pyproject.toml
	UV="$(UV)" bash .ci/locks.sh

clean: ## remove the virtualenv
	rm -rf $(VENV)
