"""The records a prequential evaluation passes around: stream events and per-model runs.

Shared by :mod:`models.evaluation` (online models) and :mod:`models._batch` (batch baselines),
so neither imports the other.

>>> run = make_run("m", {2: (True, 0.9), 0: (False, 0.1)}, count=3, n=5, seconds=1.0)
>>> run.order.tolist(), run.labels.tolist(), run.scores.tolist()
([0, 2], [False, True], [0.1, 0.9])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt


class Event(NamedTuple):
    """One stream event: a scored transaction (``features``) or its label (``label``).

    ``time`` is event time in seconds on any fixed origin; ``tag`` is optional ground truth
    (e.g. the fraud scenario) used only to break results down, never shown to a model;
    ``card`` (optional) groups transactions for card precision@100.
    """

    kind: Literal["tx", "label"]
    key: str
    time: float
    features: Mapping[str, float] | None = None
    label: bool | None = None
    tag: str | None = None
    card: str | None = None


@dataclass(frozen=True)
class Run:
    """Score given at scoring time and eventual label of every labelled transaction."""

    name: str
    order: npt.NDArray[np.int64]  # arrival rank of the transaction
    labels: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.float64]
    transactions: int
    events: int
    seconds: float
    times: npt.NDArray[np.float64] | None = None  # transaction time (seconds)
    cards: npt.NDArray[np.str_] | None = None
    model_bytes: int | None = None  # pickled size of the model at the end of the stream


def make_run(
    name: str,
    outcome: Mapping[int, tuple[bool, float]],
    count: int,
    n: int,
    seconds: float,
    meta: Mapping[int, tuple[float, str]] | None = None,
    model_bytes: int | None = None,
) -> Run:
    ranks = sorted(outcome)
    return Run(
        name=name,
        order=np.array(ranks, dtype=np.int64),
        labels=np.array([outcome[r][0] for r in ranks], dtype=np.bool_),
        scores=np.array([outcome[r][1] for r in ranks], dtype=np.float64),
        transactions=count,
        events=n,
        seconds=seconds,
        times=None if meta is None else np.array([meta[r][0] for r in ranks], dtype=np.float64),
        cards=None if meta is None else np.array([meta[r][1] for r in ranks], dtype=np.str_),
        model_bytes=model_bytes,
    )
