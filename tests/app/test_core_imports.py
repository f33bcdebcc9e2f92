"""The core loads no web, Kafka, Redis or Postgres client, not even through features or models.

``lint-imports`` states the rule on the import graph; this checks what a fresh interpreter
actually loads, so a client pulled in at run time by a package of ours is caught too.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import app.core

pytestmark = pytest.mark.servers  # a child interpreter (out of `make test-fast`)

CLIENTS = ("redis", "asyncpg", "aiokafka", "fastapi", "starlette", "uvicorn")


def test_importing_every_core_module_loads_no_client() -> None:
    modules = [f"app.core.{m.name}" for m in pkgutil.iter_modules(app.core.__path__)]
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(done.stdout))
    assert modules
    assert loaded.isdisjoint(CLIENTS), sorted(loaded & set(CLIENTS))
