"""models room: the answers of a Hoeffding tree, an adaptive tree and an ARF from node arrays.

An ARF (``ARFClassifier.predict_proba_one``) sums its *foreground* trees' answers (background
trees grown after a drift warning never vote), each multiplied by that tree's metric
(accuracy since the tree was last replaced) when ``disable_weighted_vote`` is off and the
metric is positive — a tree whose metric is 0 votes with weight 1, not 0 — then divides by
the total when it is positive. An ARF that has seen nothing answers ``{}``. The zoo's
:class:`models.bounded.Bounded` divides that answer again by its sum (0 when none). Sums run
tree by tree in River's order, so the plan's floats are River's floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.plans.base import Answers, Failed, Floats
from models.plans.trees import Builder, Nodes


@dataclass(frozen=True)
class TreePart:
    """One Hoeffding tree; ``adaptive``: a Hoeffding adaptive tree (sum, then normalise)."""

    nodes: Nodes
    adaptive: bool
    classes: bool  # the tree has seen a label: its answer has keys

    @property
    def features(self) -> tuple[str, ...]:
        return self.nodes.names

    def answer_one(self, x: Mapping[str, float]) -> tuple[float, bool]:
        n, py = self.nodes, self.nodes.py
        if not self.adaptive:
            i = n.leaf_one(0, x)
            return py.qt[i], py.keys[i]
        i, sf, st, sk, sx = n.walk_one(0, x)
        if sx or py.fails[i]:
            raise Failed
        f, t = sf + py.qf[i], st + py.qt[i]
        total = f + t
        p = t if total == 0 or math.isnan(total) else t / total
        return p, self.classes or sk or py.keys[i]

    def answer_many(self, X: Floats) -> Answers:
        n = self.nodes
        leaves, sums_f, sums_t, keys, fails = n.leaves(X)
        cur, sf, st, sk, sx = leaves[:, 0], sums_f[:, 0], sums_t[:, 0], keys[:, 0], fails[:, 0]
        if not self.adaptive:
            return Answers(n.qt[cur], n.keys[cur], np.zeros(len(X), dtype=np.bool_))
        f, t = sf + n.qf[cur], st + n.qt[cur]
        total = f + t
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where((total == 0) | np.isnan(total), t, t / total)
        return Answers(p, self.classes | sk | n.keys[cur], sx | n.fails[cur])


@dataclass(frozen=True)
class ForestPart:
    """An ARF's foreground trees, their vote weights, and the ``Bounded`` renormalisation."""

    nodes: Nodes
    weights: tuple[float, ...]  # 1.0 where River does not multiply
    bounded: bool

    @property
    def features(self) -> tuple[str, ...]:
        return self.nodes.names

    def answer_one(self, x: Mapping[str, float]) -> tuple[float, bool]:
        n, py = self.nodes, self.nodes.py
        f = t = 0.0
        present = False
        for root, w in zip(py.roots, self.weights, strict=True):
            i = n.leaf_one(root, x)
            f += py.qf[i] * w
            t += py.qt[i] * w
            present = present or py.keys[i]
        total = f + t
        if total > 0:
            f, t = f / total, t / total
        if not self.bounded:
            return t, present
        total = f + t
        return (t / total if total > 0 else 0.0), True

    def answer_many(self, X: Floats) -> Answers:
        n = self.nodes
        rows = len(X)
        f, t = np.zeros(rows), np.zeros(rows)
        present = np.zeros(rows, dtype=np.bool_)
        if len(self.weights):
            cur = n.leaves(X)[0]
            for j, w in enumerate(self.weights):  # tree by tree: River's order of sums
                f = f + n.qf[cur[:, j]] * w
                t = t + n.qt[cur[:, j]] * w
                present |= n.keys[cur[:, j]]
        total = f + t
        with np.errstate(invalid="ignore", divide="ignore"):
            f, t = np.where(total > 0, f / total, f), np.where(total > 0, t / total, t)
            if not self.bounded:
                return Answers(t, present, np.zeros(rows, dtype=np.bool_))
            total = f + t
            p = np.where(total > 0, t / total, 0.0)
        return Answers(p, np.ones(rows, dtype=np.bool_), np.zeros(rows, dtype=np.bool_))


def compile_tree(tree: Any, signed: bool) -> TreePart | None:
    """A ``HoeffdingTreeClassifier`` or ``HoeffdingAdaptiveTreeClassifier``; None if unplannable."""
    from river import tree as river_tree

    adaptive = isinstance(tree, river_tree.HoeffdingAdaptiveTreeClassifier)
    builder = Builder(signed)
    if not builder.add_tree(tree, adaptive):
        return None
    return TreePart(builder.build(), adaptive, bool(tree.classes))


def compile_forest(arf: Any, signed: bool, bounded: bool) -> ForestPart | None:
    """An ``ARFClassifier`` (foreground trees only); None if a tree is unplannable."""
    builder = Builder(signed)
    weights = []
    for i, tree in enumerate(list(arf)):
        if not builder.add_tree(tree, adaptive=False):
            return None
        metric = float(arf._metrics[i].get())
        weights.append(metric if not arf.disable_weighted_vote and metric > 0.0 else 1.0)
    return ForestPart(builder.build(), tuple(weights), bounded)
