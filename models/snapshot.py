"""Model snapshots: pickled learned state inside a versioned, checked envelope.

A pickled River model records no River version, and a model trained on other features is
silently wrong. So every snapshot carries the format, River, Python and riverguard versions,
the feature-set id and the learning-log position, and :func:`loads` refuses any mismatch
loudly. Only load snapshots this service wrote: unpickling runs code.

>>> from models import pool, zoo
>>> p = pool.ModelPool([zoo.ZOO["logreg"]], champion="logreg")
>>> blob = dumps(p.members["logreg"], feature_set="fs1", last_seq=7)
>>> member, meta = loads(blob, feature_set="fs1", model="logreg")
>>> meta["last_seq"], member.spec.name
(7, 'logreg')
>>> loads(blob, feature_set="other", model="logreg")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
SnapshotMismatch: snapshot of logreg was trained on feature set fs1, not other
"""

from __future__ import annotations

import importlib.metadata
import json
import pickle
import platform
from typing import Any

FORMAT = "riverguard-snapshot/1"
RIVER_VERSION = importlib.metadata.version("river")
_SEPARATOR = b"\n--\n"


class SnapshotMismatch(ValueError):
    """The snapshot was written by other versions or for other features; it is not loaded."""


def _riverguard_version() -> str:
    try:
        return importlib.metadata.version("riverguard")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _python() -> str:
    return ".".join(platform.python_version_tuple()[:2])


def dumps(member: Any, *, feature_set: str, last_seq: int) -> bytes:
    meta = {
        "format": FORMAT,
        "model": member.spec.name,
        "definition_version": member.spec.version,
        "river": RIVER_VERSION,
        "python": _python(),
        "riverguard": _riverguard_version(),
        "feature_set": feature_set,
        "labels_learned": member.learned,
        "last_seq": last_seq,
    }
    spec, member.spec = member.spec, None  # the factory is code: rebuilt from the zoo on load
    try:
        body = pickle.dumps(member, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        member.spec = spec
    return json.dumps(meta, sort_keys=True).encode() + _SEPARATOR + body


def metadata(blob: bytes) -> dict[str, Any]:
    head, sep, _ = blob.partition(_SEPARATOR)
    if not sep:
        raise SnapshotMismatch("not a riverguard snapshot")
    meta: dict[str, Any] = json.loads(head)
    return meta


def loads(blob: bytes, *, feature_set: str, model: str) -> tuple[Any, dict[str, Any]]:
    meta = metadata(blob)
    checks = [
        ("format", FORMAT),
        ("model", model),
        ("river", RIVER_VERSION),
        ("python", _python()),
    ]
    for key, expected in checks:
        if meta.get(key) != expected:
            raise SnapshotMismatch(
                f"snapshot of {meta.get('model')} has {key} {meta.get(key)!r}, "
                f"expected {expected!r}"
            )
    if meta.get("feature_set") != feature_set:
        raise SnapshotMismatch(
            f"snapshot of {model} was trained on feature set {meta.get('feature_set')}, "
            f"not {feature_set}"
        )
    member = pickle.loads(blob.partition(_SEPARATOR)[2])  # noqa: S301 - our own snapshots only
    from models import zoo

    spec = zoo.ZOO.get(model)
    if spec is None or spec.version != meta["definition_version"]:
        have = "no such model" if spec is None else f"v{spec.version}"
        raise SnapshotMismatch(
            f"snapshot of {model} is of definition v{meta['definition_version']}; "
            f"the zoo has {have}"
        )
    member.spec = spec
    return member, meta
