"""models room: Hoeffding trees (plain, adaptive, an ARF's) as flat node arrays.

What River does, and the plan with it (River 0.26):

* **Routing.** A numeric split sends ``x[f] <= threshold`` left. A missing feature (the
  ``KeyError``) follows ``most_common_path``: the child with the larger ``total_weight`` (left
  on a tie), fixed at compile time. The zoo's trees sit behind :class:`SignedLog`, which is
  monotone, so each threshold ``t`` is turned into the largest raw value ``T`` with
  ``signed_log(T) <= t`` (:func:`raw_threshold`): the plan routes raw values with the same
  outcome as River, bit for bit, without taking a logarithm.
* **Leaves.** Only majority-class leaves (``leaf_prediction="mc"``, all the zoo uses) answer
  a fixed class distribution: the compiler asks each leaf for it (``leaf.prediction``). Naive
  Bayes leaves ("nb", "nba") depend on ``x``: no plan (the caller keeps the River object).
* **A tree's answer** is ``{c: 0.0 for c in classes}`` updated with its leaf's distribution.
* **Hoeffding adaptive trees** add the distributions of *every node reached*, alternate
  subtrees included, then normalise. Each leaf's distribution is divided by
  ``sum × error²`` (its ADWIN error estimate; unchanged when that is 0). On a missing
  feature River's walk yields the most-common child twice, so that child's alternate counts
  twice. And two River bugs make ``predict_proba_one`` raise — an alternate subtree that has
  split (``traverse`` appends a *list*), a leaf with no statistics (``prediction`` answers
  None) — the pool then reports its fallback score: the plan answers "failed" there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from models.plans.base import Bools, Floats, Index

LEAF = -1
_BOOL_KEYS = (False, True)


def signed_log(value: float) -> float:
    return math.copysign(math.log1p(abs(value)), value)


def raw_threshold(t: float) -> float:
    """The largest double ``v`` with ``signed_log(v) <= t`` (``v <= T`` iff it goes left)."""
    if math.isnan(t) or math.isinf(t):
        return t
    try:
        guess = math.copysign(math.expm1(abs(t)), t)
    except OverflowError:
        guess = math.inf
    for _ in range(1_000):  # a few steps: expm1 is within an ulp or two of the inverse
        if signed_log(guess) > t:
            guess = math.nextafter(guess, -math.inf)
            continue
        above = math.nextafter(guess, math.inf)
        if signed_log(above) <= t:
            guess = above
            continue
        return guess
    raise ArithmeticError(f"no raw threshold found for {t!r}")  # log1p not monotone


class Lists(NamedTuple):
    """:class:`Nodes` as plain lists (``name`` None at leaves), for one row at a time."""

    name: list[str | None]
    roots: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    missing: list[int]
    qf: list[float]
    qt: list[float]
    keys: list[bool]
    fails: list[bool]
    af: list[float]
    at: list[float]
    akeys: list[bool]
    afails: list[bool]


@dataclass(frozen=True)
class Nodes:
    """Flat arrays of one or more trees; child indices are absolute, ``feature`` is -1 at leaves.

    ``qf``/``qt``: the tree's answer at a leaf (False / True); ``keys``: it is non-empty;
    ``fails``: River raises there. ``af``/``at``/``akeys``/``afails``: what a branch's
    alternate subtree adds on the way (adaptive trees; zero elsewhere).
    """

    names: tuple[str, ...]
    roots: Index
    feature: Index
    threshold: Floats
    left: Index
    right: Index
    missing: Index
    qf: Floats
    qt: Floats
    keys: Bools
    fails: Bools
    af: Floats
    at: Floats
    akeys: Bools
    afails: Bools
    height: int
    _py: Lists = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # plain lists for the row-by-row walk: indexing numpy arrays per node is slow
        name = [None if f < 0 else self.names[f] for f in self.feature.tolist()]
        arrays: list[npt.NDArray[Any]] = [self.roots, self.threshold, self.left, self.right]
        arrays += [self.missing, self.qf, self.qt, self.keys, self.fails]
        arrays += [self.af, self.at, self.akeys, self.afails]
        object.__setattr__(self, "_py", Lists(name, *(a.tolist() for a in arrays)))

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_py"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    @property
    def py(self) -> Lists:
        return self._py

    def leaf_one(self, root: int, x: Mapping[str, float]) -> int:
        """The leaf ``x`` reaches from ``root`` (no alternates)."""
        py = self._py
        name, threshold, left, right, missing = py.name, py.threshold, py.left, py.right, py.missing
        i = root
        while (f := name[i]) is not None:
            v = x.get(f)
            i = missing[i] if v is None else left[i] if v <= threshold[i] else right[i]
        return i

    def walk_one(self, root: int, x: Mapping[str, float]) -> tuple[int, float, float, bool, bool]:
        """The leaf reached and the alternates' sums (f, t, keys, fails), in River's order."""
        py = self._py
        name, threshold, left, right, missing = py.name, py.threshold, py.left, py.right, py.missing
        af, at, akeys, afails = py.af, py.at, py.akeys, py.afails
        i, sf, st, sk, sx = root, 0.0, 0.0, False, False
        while (f := name[i]) is not None:
            sf, st, sk, sx = sf + af[i], st + at[i], sk or akeys[i], sx or afails[i]
            v = x.get(f)
            if v is None:  # River's walk yields the most-common child twice
                i = missing[i]
                sf, st, sk, sx = sf + af[i], st + at[i], sk or akeys[i], sx or afails[i]
            else:
                i = left[i] if v <= threshold[i] else right[i]
        return i, sf, st, sk, sx

    @property
    def has_alternates(self) -> bool:
        return bool(self.akeys.any() or self.afails.any())

    def leaves(self, X: Floats) -> tuple[Index, Floats, Floats, Bools, Bools]:
        """Leaf reached per row and tree, and the alternates' sums (f, t, keys, fails) met."""
        n, k = len(X), len(self.roots)
        cur = np.broadcast_to(self.roots, (n, k)).copy()
        sf, st = np.zeros((n, k)), np.zeros((n, k))
        sk, sx = np.zeros((n, k), dtype=np.bool_), np.zeros((n, k), dtype=np.bool_)
        rows = np.arange(n)[:, None]
        alternates = self.has_alternates
        for _ in range(self.height):
            f = self.feature[cur]
            branch = f >= 0
            if not branch.any():
                break
            if alternates:
                self._meet(cur, branch, sf, st, sk, sx)
            v = X[rows, np.where(branch, f, 0)]
            lost = np.isnan(v)
            with np.errstate(invalid="ignore"):
                step = np.where(v <= self.threshold[cur], self.left[cur], self.right[cur])
            step = np.where(lost, self.missing[cur], step)
            if alternates:  # River's walk yields the most-common child twice
                self._meet(step, branch & lost, sf, st, sk, sx)
            cur = np.where(branch, step, cur)
        return cur, sf, st, sk, sx

    def _meet(self, at: Index, where: Bools, sf: Floats, st: Floats, sk: Bools, sx: Bools) -> None:
        np.add(sf, np.where(where, self.af[at], 0.0), out=sf)
        np.add(st, np.where(where, self.at[at], 0.0), out=st)
        sk |= where & self.akeys[at]
        sx |= where & self.afails[at]


class Builder:
    """Collects the nodes of trees, in depth-first order, into :class:`Nodes`."""

    def __init__(self, signed: bool) -> None:
        self.signed = signed
        self.names: dict[str, int] = {}
        self.rows: list[list[Any]] = []
        self.roots: list[int] = []
        self.height = 0

    def add_tree(self, tree: Any, adaptive: bool) -> bool:
        """Add one River tree; False when it cannot be planned (then no plan at all)."""
        classes = set(getattr(tree, "classes", set()))
        if not classes <= set(_BOOL_KEYS) or tree.leaf_prediction != "mc":
            return False
        self.roots.append(len(self.rows))
        if tree._root is None:  # nothing learned: the answer is {c: 0.0 for c in classes}
            self.rows.append([None, 0.0, 0, 0, 0, 0.0, 0.0, bool(classes), False, *_NO_ALT])
            return True
        return self._node(tree._root, tree, classes, adaptive, 1)

    def _node(self, node: Any, tree: Any, classes: set[Any], adaptive: bool, depth: int) -> bool:
        from river.tree.nodes.branch import DTBranch, NumericBinaryBranch

        self.height = max(self.height, depth)
        index = len(self.rows)
        branch: Any = node  # River's nodes are untyped beyond DTBranch
        if not isinstance(node, DTBranch):
            self.rows.append([None, 0.0, 0, 0, 0, *_leaf(node, tree, classes, adaptive), *_NO_ALT])
            return True
        if type(node).branch_no is not NumericBinaryBranch.branch_no:
            return False  # nominal or multiway splits: the zoo's features are all numeric
        alternate = _alternate(node, tree, adaptive)
        if alternate is None:
            return False
        self.rows.append([branch.feature, self._threshold(branch.threshold), 0, 0, 0])
        self.rows[index] += [0.0, 0.0, False, False, *alternate]
        self.names.setdefault(branch.feature, len(self.names))
        left, right = branch.children
        ids = []
        for child in (left, right):
            ids.append(len(self.rows))
            if not self._node(child, tree, classes, adaptive, depth + 1):
                return False
        most = 1 if left.total_weight < right.total_weight else 0
        self.rows[index][2:5] = [ids[0], ids[1], ids[most]]
        return True

    def _threshold(self, t: float) -> float:
        return raw_threshold(float(t)) if self.signed else float(t)

    def build(self) -> Nodes:
        r = self.rows
        column = list(zip(*r, strict=True)) if r else [()] * 13
        feature = [LEAF if name is None else self.names[name] for name in column[0]]
        return Nodes(
            names=tuple(self.names),
            roots=_ints(self.roots),
            feature=_ints(feature),
            threshold=_floats(column[1]),
            left=_ints(column[2]),
            right=_ints(column[3]),
            missing=_ints(column[4]),
            qf=_floats(column[5]),
            qt=_floats(column[6]),
            keys=_bools(column[7]),
            fails=_bools(column[8]),
            af=_floats(column[9]),
            at=_floats(column[10]),
            akeys=_bools(column[11]),
            afails=_bools(column[12]),
            height=self.height,
        )


_NO_ALT = (0.0, 0.0, False, False)


def _leaf(leaf: Any, tree: Any, classes: set[Any], adaptive: bool) -> tuple[Any, ...]:
    """(False, True, non-empty, fails) of the tree's answer at this leaf."""
    dist = leaf.prediction({}, tree=tree)  # mc leaves do not read x
    if dist is None:  # adaptive leaf with no statistics: River raises
        return 0.0, 0.0, False, True
    if adaptive:  # summed over the nodes reached, normalised at the end
        return float(dist.get(False, 0.0)), float(dist.get(True, 0.0)), bool(dist), False
    answer = {c: 0.0 for c in sorted(classes)}
    answer.update(dist)
    return float(answer.get(False, 0.0)), float(answer.get(True, 0.0)), bool(answer), False


def _alternate(node: Any, tree: Any, adaptive: bool) -> tuple[Any, ...] | None:
    """What a branch's alternate subtree adds to an adaptive tree's answer (None: unplannable)."""
    from river.tree.nodes.branch import DTBranch

    alternate = getattr(node, "_alternate_tree", None) if adaptive else None
    if not alternate:
        return _NO_ALT
    if isinstance(alternate, DTBranch):
        return 0.0, 0.0, False, True  # River appends a list and then calls .prediction on it
    qf, qt, keys, fails = _leaf(alternate, tree, set(), True)
    return qf, qt, keys, fails


def _ints(values: Any) -> Index:
    out = np.array(values, dtype=np.intp)
    out.flags.writeable = False
    return out


def _floats(values: Any) -> Floats:
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


def _bools(values: Any) -> Bools:
    out = np.array(values, dtype=np.bool_)
    out.flags.writeable = False
    return out
