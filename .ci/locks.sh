#!/usr/bin/env bash
# Compile the hash-pinned locks from pyproject.toml, or (--check) verify they are current.
# Both locks name no registry host: uv writes none unless asked (--emit-index-url).
# --check recompiles into copies of the committed locks: uv keeps every pin that still satisfies
# pyproject.toml, so the check fails when pyproject and the locks disagree, not whenever the
# registry publishes a newer release.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
flags=(--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
       --quiet --custom-compile-command "make lock")
if [[ "${1:-}" == "--check" ]]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  cp requirements.lock requirements-dev.lock "$out/"
  $UV pip compile pyproject.toml "${flags[@]}" -o "$out/requirements.lock"
  $UV pip compile pyproject.toml --extra demo --extra dev --extra parquet "${flags[@]}" -o "$out/requirements-dev.lock"
  diff -u requirements.lock "$out/requirements.lock"
  diff -u requirements-dev.lock "$out/requirements-dev.lock"
  echo "locks match pyproject.toml"
else
  $UV pip compile pyproject.toml "${flags[@]}" -o requirements.lock
  $UV pip compile pyproject.toml --extra demo --extra dev --extra parquet "${flags[@]}" -o requirements-dev.lock
fi
