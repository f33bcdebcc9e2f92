"""Vectorised weighted choices within groups (e.g. a merchant within a city).

>>> sampler = GroupSampler.build(groups=np.array([0, 0, 1]), weights=np.array([1.0, 3.0, 1.0]))
>>> sampler.sample(np.array([0, 0, 1]), np.array([0.1, 0.9, 0.5])).tolist()
[0, 1, 2]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class GroupSampler:
    """Draw one item per query from the query's group, with probability ∝ the item's weight.

    Each group ``g`` owns the interval ``(g, g + 1]`` of a single cumulative array, so one
    ``searchsorted`` answers every query at once. Only groups that hold items may be queried
    (:meth:`has` tells which).
    """

    items: IntArray
    cum: FloatArray
    counts: IntArray

    @classmethod
    def build(
        cls, groups: IntArray, weights: FloatArray, n_groups: int | None = None
    ) -> GroupSampler:
        """Index items ``0..len(groups)-1`` by their group; ``weights`` must be positive."""
        size = int(groups.max()) + 1 if n_groups is None else n_groups
        order = np.lexsort((np.arange(len(groups)), groups))
        sorted_groups = groups[order]
        sorted_weights = weights[order].astype(np.float64)
        totals = np.bincount(sorted_groups, weights=sorted_weights, minlength=size)
        cum = np.cumsum(sorted_weights)
        starts = np.searchsorted(sorted_groups, sorted_groups, side="left")
        before = np.concatenate(([0.0], cum))[starts]
        within = (cum - before) / totals[sorted_groups]
        last = np.r_[sorted_groups[1:] != sorted_groups[:-1], True]
        within[last] = 1.0  # no rounding gap at the end of a group
        counts = np.bincount(sorted_groups, minlength=size).astype(np.int64)
        return cls(order.astype(np.int64), sorted_groups + within, counts)

    def has(self, groups: IntArray) -> npt.NDArray[np.bool_]:
        """Which of ``groups`` hold at least one item."""
        inside = (groups >= 0) & (groups < len(self.counts))
        result = np.zeros(len(groups), dtype=bool)
        result[inside] = self.counts[groups[inside]] > 0
        return result

    def sample(self, groups: IntArray, uniforms: FloatArray) -> IntArray:
        """One item per query; ``uniforms`` in [0, 1)."""
        positions = np.searchsorted(self.cum, groups + uniforms, side="right")
        return self.items[np.minimum(positions, len(self.items) - 1)]


def gumbel_top_k(log_weights: FloatArray, k: int, rng: np.random.Generator) -> IntArray:
    """Per row, ``k`` column indices drawn without replacement with probability ∝ weight."""
    keys = log_weights + rng.gumbel(size=log_weights.shape)
    k = min(k, log_weights.shape[1])
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    rows = np.arange(log_weights.shape[0])[:, None]
    return np.asarray(top[rows, np.argsort(-keys[rows, top], axis=1)], dtype=np.int64)
