"""The periodically retrained batch baselines of :mod:`models.evaluation`.

scikit-learn is a development dependency, so it is imported inside the functions that need
it, never at module import: the service can import :mod:`models` without it. ``lgbm`` is
LightGBM with the windowed booster's parameters (:data:`models.booster.LGBM_PARAMS`, 400
trees) on every labelled row of the window, unweighted: the batch model a team would ship.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from models import guard
from models.stream import Event, Run, make_run


def _matrix(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    out = np.full((len(rows), len(names)), np.nan)
    for i, features in enumerate(rows):
        for j, name in enumerate(names):
            value = features.get(name)
            if value is not None:
                out[i, j] = value
    return out


class _Lgbm:
    """LightGBM with the booster's parameters, behind scikit-learn's fit / predict_proba."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.model: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Lgbm:
        import lightgbm

        from models.booster import LGBM_PARAMS

        params = {**LGBM_PARAMS, "seed": self.seed}
        self.model = lightgbm.train(params, lightgbm.Dataset(x, y.astype(np.float32)), 400)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        assert self.model is not None
        p = np.asarray(self.model.predict(x))
        return np.column_stack([1 - p, p])


def _estimator(model: Literal["hgb", "logreg", "lgbm"], seed: int) -> Any:
    if model == "lgbm":
        return _Lgbm(seed)
    if model == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed)
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000)
    )


class _Week:
    """The frozen model of the current week and the transactions it scored."""

    def __init__(self, model: Any, names: list[str]) -> None:
        self.model, self.names = model, names
        self.pending: list[tuple[int, Mapping[str, float]]] = []

    def flush(self, scores: dict[int, float]) -> None:
        if not self.pending:
            return
        if self.model is None:
            scores.update({rank: 0.0 for rank, _ in self.pending})
        else:
            x = _matrix([f for _, f in self.pending], self.names)
            probs = self.model.predict_proba(x)[:, 1]
            scores.update(
                {rank: float(p) for (rank, _), p in zip(self.pending, probs, strict=True)}
            )
        self.pending = []


def _fit(
    known: Mapping[int, tuple[Mapping[str, float], bool]],
    model: Literal["hgb", "logreg", "lgbm"],
    seed: int,
) -> _Week:
    labels = [y for _, y in known.values()]
    if len(set(labels)) < 2:
        return _Week(None, [])
    names = sorted({name for features, _ in known.values() for name in features})
    x = _matrix([f for f, _ in known.values()], names)
    return _Week(_estimator(model, seed).fit(x, np.array(labels)), names)


def periodic(
    events: Iterable[Event],
    *,
    model: Literal["hgb", "logreg", "lgbm"],
    seed: int,
    period: float,
    window: float | None = None,
) -> Run:
    """Replay ``events``; retrain at each period boundary on every label received before it
    whose transaction is at most ``window`` seconds old (None: every label)."""

    stored: dict[str, tuple[Mapping[str, float], int, float, str]] = {}
    known: dict[int, tuple[Mapping[str, float], bool]] = {}
    born: dict[int, float] = {}
    scores: dict[int, float] = {}
    meta: dict[int, tuple[float, str]] = {}
    current, period_no, count, n_events = _Week(None, []), -math.inf, 0, 0
    origin: float | None = None
    started = time.perf_counter()
    for event in events:
        n_events += 1
        origin = event.time if origin is None else origin
        if event.kind == "tx" and event.key not in stored:
            if (event.time - origin) // period > period_no:
                period_no = (event.time - origin) // period
                current.flush(scores)
                recent = known
                if window is not None:
                    since = event.time - window
                    recent = {r: v for r, v in known.items() if born[r] >= since}
                current = _fit(recent, model, seed)
            clean = guard.clean_features(event.features or {}).values
            stored[event.key] = (clean, count, event.time, event.card or "")
            current.pending.append((count, clean))
            count += 1
        elif event.kind == "label" and event.key in stored:
            seen, rank, at, card = stored[event.key]
            known.setdefault(rank, (seen, bool(event.label)))
            born[rank], meta[rank] = at, (at, card)
    current.flush(scores)
    outcome = {rank: (y, scores[rank]) for rank, (_, y) in known.items()}
    name = f"batch_{model}_{'weekly' if period == 7 * 86_400.0 else f'every_{period:g}s'}"
    return make_run(name, outcome, count, n_events, time.perf_counter() - started, meta)
