"""``riverguard evaluate``: replay a simulator stream through the real feature definitions.

Transactions get the features the service would compute (the pure reference implementation
of ``features/``, in arrival order), labels are delivered at their ``labeled_at`` position in
the stream, and every model is judged prequentially on the score it gave before learning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from features import config as feature_config
from features import reference
from features.schema import Transaction, decode_label, decode_transaction
from models import evaluation, zoo
from models.stream import Run
from simulator.records import Record

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def events(records: Iterable[Record]) -> Iterator[evaluation.Event]:
    """Simulator records → evaluation events with reference features (arrival order)."""
    features = reference.ReferenceFeatures(feature_config.FeatureConfig())
    seen: dict[str, Transaction] = {}
    for record in records:
        if record.kind == "transaction":
            tx = decode_transaction(record.payload(), now=FAR_FUTURE)
            result = features.transaction(tx)
            if result.status == "late":
                continue
            seen[tx.transaction_id] = tx
            tag = record.truth.scenario if record.truth else None
            yield evaluation.Event(
                "tx", tx.transaction_id, tx.timestamp.timestamp(), result.features, tag=tag,
                card=tx.card_id,  # card precision@100 per day
            )  # fmt: skip
        else:
            label = decode_label(record.payload(), now=FAR_FUTURE)
            tx_of = seen.get(label.transaction_id)
            if tx_of is None:
                continue
            features.label(label, tx_of)
            yield evaluation.Event(
                "label", label.transaction_id, label.labeled_at.timestamp(), label=label.is_fraud
            )


def runs(
    stream: Sequence[evaluation.Event], specs: Iterable[zoo.ModelSpec], baseline: str
) -> list[tuple[Run, bool]]:
    """Every online model's run (a stack's members too), then the batch baselines.

    The second item says whether the run was timed (online) — the rows of
    :func:`models.evaluation.evaluate`, kept as runs so that weeks and budgets can be read.
    """
    out = [(run, True) for spec in specs for run in evaluation.run_online_all(stream, spec)]
    if baseline == "hgb":
        for name, model, period, window in evaluation.DEFAULT_BATCH:
            batch = evaluation.run_batch(stream, model=model, period=period, window=window)
            out.append((dataclasses.replace(batch, name=name), False))
    elif baseline != "none":
        out.append((evaluation.run_weekly_batch(stream, model=baseline), False))  # type: ignore[arg-type]
    return out
