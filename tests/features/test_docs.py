"""The docstring examples of the package run (they are part of its specification)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "features.config",
    "features.windows",
    "features.definitions",
    "features.reference",
    "features.redis_io",
    "features.store",
    "features.rebuild",
    "features.schema",
    "features.pan",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0 or name == "features.redis_io"


def test_readme_lists_every_feature() -> None:
    from pathlib import Path

    from features import definitions

    readme = (Path(__file__).parents[2] / "features" / "README.md").read_text()
    for name in definitions.FEATURE_NAMES:
        assert f"`{name}`" in readme, name
