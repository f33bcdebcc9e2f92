"""The docstring examples of the simulator package are part of its specification."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import simulator.generate

# Found from a submodule's file: under pytest, the bare name ``simulator`` can resolve to the
# tests/simulator directory (a namespace package) before the installed package.
PACKAGE_DIR = Path(simulator.generate.__file__).parent
MODULES = sorted(
    f"simulator.{path.stem}" for path in PACKAGE_DIR.glob("*.py") if not path.stem.startswith("_")
)


def test_every_module_is_covered() -> None:
    assert "simulator.replay" in MODULES and len(MODULES) > 10


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
