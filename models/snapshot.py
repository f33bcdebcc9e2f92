"""Model snapshots: pickled learned state inside a versioned, checked envelope.

A pickled River model records no River version, and a model trained on other features is
silently wrong. So every snapshot carries a header: the envelope format, the model's name
and definition version, the River, Python and riverguard versions, the feature-set id, the
labels learned and the learning-log position (``last_seq``), and a SHA-256 of the body.
:func:`loads` checks all of it *before* unpickling and refuses any mismatch loudly with
:class:`SnapshotMismatch`.

Security: unpickling runs code. Only load snapshots this service wrote to its own database;
never accept one from a user.

>>> from models import pool, zoo
>>> p = pool.ModelPool([zoo.ZOO["logreg"]], champion="logreg")
>>> blob = dumps(p.members["logreg"], feature_set="fs1", last_seq=7)
>>> member, meta = loads(blob, feature_set="fs1", model="logreg")
>>> meta["last_seq"], member.spec.name
(7, 'logreg')
>>> loads(blob, feature_set="other", model="logreg")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
SnapshotMismatch: snapshot of logreg: feature_set is 'fs1', expected 'other'
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import pickle
import platform
from typing import Any

from models import zoo
from models.member import Member

FORMAT = "riverguard-snapshot/2"
MAGIC = b"RIVERGUARD-SNAPSHOT\n"
RIVER_VERSION = importlib.metadata.version("river")


class SnapshotMismatch(ValueError):
    """The snapshot was written by other versions or for other features; it is not loaded."""


def riverguard_version() -> str:
    try:
        return importlib.metadata.version("riverguard")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def python_version() -> str:
    """Major.minor: pickles of River models are not portable across Python minors."""
    return ".".join(platform.python_version_tuple()[:2])


def dumps(member: Member, *, feature_set: str, last_seq: int) -> bytes:
    """Envelope of ``member`` (model, metrics, drift, baseline, counters)."""
    spec = member.spec
    # A shallow copy without the spec (code: re-attached on load), never the member itself:
    # the service pickles off its event loop while requests still read ``member.version``.
    bare = dataclasses.replace(member, spec=None)  # type: ignore[arg-type]
    body = pickle.dumps(bare, protocol=pickle.HIGHEST_PROTOCOL)
    meta = {
        "format": FORMAT,
        "model": spec.name,
        "definition_version": spec.version,
        "river": RIVER_VERSION,
        "python": python_version(),
        "riverguard": riverguard_version(),
        "feature_set": feature_set,
        "labels_learned": member.learned,
        "last_seq": last_seq,
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    return MAGIC + json.dumps(meta, sort_keys=True).encode() + b"\n" + body


def _split(blob: bytes) -> tuple[dict[str, Any], bytes]:
    if not blob.startswith(MAGIC):
        raise SnapshotMismatch("not a riverguard snapshot (or an older format)")
    head, newline, body = blob[len(MAGIC) :].partition(b"\n")
    try:
        meta = json.loads(head) if newline else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise SnapshotMismatch("snapshot header is unreadable")
    return meta, body


def metadata(blob: bytes) -> dict[str, Any]:
    """The header of a snapshot, without unpickling anything."""
    return _split(blob)[0]


def _check(meta: dict[str, Any], expected: dict[str, Any]) -> None:
    wrong = [
        f"{key} is {meta.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if meta.get(key) != value
    ]
    if wrong:
        raise SnapshotMismatch(f"snapshot of {meta.get('model')}: " + "; ".join(wrong))


def loads(
    blob: bytes, *, feature_set: str, model: str, spec: zoo.ModelSpec | None = None
) -> tuple[Member, dict[str, Any]]:
    """The member stored in ``blob`` and its header, after checking every expectation.

    ``spec`` is the definition the caller runs (default: ``zoo.ZOO[model]``); its version
    must equal the one the snapshot was trained with.
    """
    meta, body = _split(blob)
    spec = spec or zoo.ZOO.get(model)
    expected: dict[str, Any] = {"format": FORMAT, "model": model, "river": RIVER_VERSION}
    expected |= {"python": python_version(), "feature_set": feature_set}
    expected["definition_version"] = None if spec is None else spec.version
    _check(meta, expected)
    if spec is None:
        raise SnapshotMismatch(f"no model definition named {model!r}")
    if hashlib.sha256(body).hexdigest() != meta.get("sha256"):
        raise SnapshotMismatch(f"snapshot of {model} is corrupt (checksum mismatch)")
    member = pickle.loads(body)  # noqa: S301 - checked header, our own snapshots only
    if not isinstance(member, Member):
        raise SnapshotMismatch(f"snapshot of {model} holds no model state")
    member.spec = spec
    return member, meta
