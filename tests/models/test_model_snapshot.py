"""Snapshots restore exactly, and refuse anything written by other versions or features."""

from __future__ import annotations

import json

import pytest
from mstreams import by_cost, new_pool, stream, train

from models import snapshot, zoo


@pytest.mark.parametrize("name", by_cost(zoo.ZOO))
def test_round_trip_predicts_and_learns_identically(name: str) -> None:
    events = stream(6000, seed=11)
    original = new_pool(name)
    train(original, events[:5000])
    blob = original.snapshot(name, "fs", last_seq=5000)
    restored = new_pool(name)
    assert restored.restore(name, blob, "fs") == 5000
    probe = [x for x, _ in events[5000:5300]]

    def scores(models: object) -> list[float]:
        return [s.score for x in probe for s in models.score(x)]  # type: ignore[attr-defined]

    assert scores(original) == scores(restored)
    assert original.version_of(name) == restored.version_of(name) == f"{zoo.ZOO[name].version}.5000"
    train(original, events[5000:])
    train(restored, events[5000:])
    assert scores(original) == scores(restored)
    assert original.status() == restored.status()
    assert original.explain(probe[0]) == restored.explain(probe[0])


def test_header_describes_the_snapshot_without_unpickling() -> None:
    models = new_pool("logreg")
    train(models, stream(10))
    meta = snapshot.metadata(models.snapshot("logreg", "fs-a", last_seq=42))
    assert meta["model"] == "logreg" and meta["feature_set"] == "fs-a"
    assert meta["labels_learned"] == 10 and meta["last_seq"] == 42
    assert meta["river"] == snapshot.RIVER_VERSION and meta["python"] == snapshot.python_version()
    assert meta["definition_version"] == zoo.ZOO["logreg"].version
    assert meta["format"] == snapshot.FORMAT and "riverguard" in meta


def forge(blob: bytes, **changes: object) -> bytes:
    meta = snapshot.metadata(blob)
    body = blob[len(snapshot.MAGIC) :].partition(b"\n")[2]
    return snapshot.MAGIC + json.dumps(meta | changes).encode() + b"\n" + body


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"river": "0.0.1"}, "river is '0.0.1'"),
        ({"python": "3.99"}, "python is '3.99'"),
        ({"format": "riverguard-snapshot/1"}, "format"),
        ({"definition_version": "0"}, "definition_version is '0'"),
        ({"model": "hat"}, "model is 'hat'"),
        ({"sha256": "0" * 64}, "corrupt"),
    ],
)
def test_mismatches_are_refused_loudly(changes: dict[str, str], words: str) -> None:
    models = new_pool("logreg")
    blob = forge(models.snapshot("logreg", "fs-a", last_seq=1), **changes)
    before = models.members["logreg"]
    with pytest.raises(snapshot.SnapshotMismatch, match=words):
        models.restore("logreg", blob, "fs-a")
    assert models.members["logreg"] is before  # nothing replaced


def test_other_feature_set_is_refused() -> None:
    blob = new_pool("logreg").snapshot("logreg", "fs-a", last_seq=1)
    with pytest.raises(snapshot.SnapshotMismatch, match="feature_set is 'fs-a', expected 'fs-b'"):
        new_pool("logreg").restore("logreg", blob, "fs-b")


@pytest.mark.parametrize(
    "blob", [b"", b"garbage", snapshot.MAGIC + b"{not json\n", snapshot.MAGIC + b"[]\nxx"]
)
def test_garbage_is_refused_before_unpickling(blob: bytes) -> None:
    with pytest.raises(snapshot.SnapshotMismatch):
        new_pool("logreg").restore("logreg", blob, "fs")


def test_truncated_body_is_refused() -> None:
    blob = new_pool("arf").snapshot("arf", "fs", last_seq=0)
    with pytest.raises(snapshot.SnapshotMismatch, match="corrupt"):
        new_pool("arf").restore("arf", blob[:-10], "fs")


def test_restored_labels_keep_pairing_with_later_ones() -> None:
    models = new_pool("logreg", "hat")
    train(models, stream(50))
    blobs = {n: models.snapshot(n, "fs", last_seq=50) for n in models.names()}
    fresh = new_pool("logreg", "hat")
    for name, blob in blobs.items():
        fresh.restore(name, blob, "fs")
    train(fresh, stream(20, seed=8))
    tags = fresh.members["logreg"].quality.tags().tolist()
    assert tags == list(range(70))
