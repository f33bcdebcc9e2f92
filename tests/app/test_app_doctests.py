"""Every docstring example in ``app/`` runs (they are the spec of small pieces)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import app

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(app.__path__, "app.") if not m.name.endswith("__main__")
)


def test_modules_are_found() -> None:
    assert {"app.core.budgets", "app.core.decisions", "app.tools.workers"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
