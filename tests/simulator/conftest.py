"""Shared simulated streams (built once per session; generation is deterministic)."""

from __future__ import annotations

import pytest

from simulator.generate import SimConfig, Stream, simulate
from simulator.records import Record

SMALL = SimConfig(cards=300, merchants=60, days=12, seed=5)
MEDIUM = SimConfig(cards=2000, days=30, seed=11)


@pytest.fixture(scope="session")
def small_config() -> SimConfig:
    return SMALL


@pytest.fixture(scope="session")
def small_stream() -> Stream:
    return simulate(SMALL)


@pytest.fixture(scope="session")
def small_records(small_stream: Stream) -> list[Record]:
    return list(small_stream)


@pytest.fixture(scope="session")
def medium_stream() -> Stream:
    return simulate(MEDIUM)


@pytest.fixture(scope="session")
def medium_records(medium_stream: Stream) -> list[Record]:
    return list(medium_stream)
