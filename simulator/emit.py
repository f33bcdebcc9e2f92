"""Turn the sorted columns of a simulated stream into :class:`Record` objects, cheaply.

Strings are built once per column with numpy and plain lists; each record then costs a dict.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from simulator import catalog
from simulator.config import SCENARIOS
from simulator.frame import LEGIT, NO_DEVICE, TxFrame
from simulator.labels import SOURCES, Labels
from simulator.population import Population
from simulator.records import Record, Truth
from simulator.sampling import IntArray


def rfc3339(start: datetime, offsets_ms: IntArray) -> list[str]:
    """``start`` + each offset, as ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    >>> from datetime import UTC
    >>> rfc3339(datetime(2026, 1, 1, tzinfo=UTC), np.array([1500]))
    ['2026-01-01T00:00:01.500Z']
    """
    base = np.datetime64(int(start.timestamp() * 1000), "ms")
    text = np.datetime_as_string(base + offsets_ms.astype("timedelta64[ms]"), unit="ms")
    return [value + "Z" for value in text.tolist()]


@dataclass(frozen=True)
class Columns:
    """Per-transaction wire values as Python lists (one entry per sorted transaction)."""

    ids: list[str]
    at: list[str]
    card: list[str]
    merchant: list[str]
    amount: list[float]
    currency: list[str]
    mcc: list[str]
    country: list[str]
    channel: list[str]
    lat: list[float]
    lon: list[float]
    located: list[bool]
    device: list[str | None]
    customer: list[str]
    truth: list[Truth]


def columns(world: Population, frame: TxFrame, ids: list[str], at: list[str]) -> Columns:
    """Look every code up once, column by column."""
    countries = world.cities.countries
    home = world.cities.country[world.customer_city]
    currencies = [catalog.currency_of(countries[c]) for c in home.tolist()]
    customer = world.card_customer[frame.card]
    truths = [Truth(False, None)] + [Truth(True, name) for name in SCENARIOS]
    return Columns(
        ids=ids,
        at=at,
        card=[world.card_ids[c] for c in frame.card.tolist()],
        merchant=[world.merchant_ids[m] for m in frame.merchant.tolist()],
        amount=np.round(frame.amount, 2).tolist(),
        currency=[currencies[c] for c in customer.tolist()],
        mcc=[catalog.MCCS[c] for c in world.merchant_category[frame.merchant].tolist()],
        country=[countries[c] for c in frame.country.tolist()],
        channel=[catalog.CHANNELS[c] for c in frame.channel.tolist()],
        lat=np.round(np.nan_to_num(frame.lat), 4).tolist(),
        lon=np.round(np.nan_to_num(frame.lon), 4).tolist(),
        located=(~np.isnan(frame.lat)).tolist(),
        device=[None if d == NO_DEVICE else f"dev_{d:010x}" for d in frame.device.tolist()],
        customer=[world.customer_ids[c] for c in customer.tolist()],
        truth=[truths[s - LEGIT] for s in frame.scenario.tolist()],
    )


def transaction(cols: Columns, i: int) -> Record:
    """The record of sorted transaction ``i``."""
    data: dict[str, Any] = {
        "transaction_id": cols.ids[i],
        "card_id": cols.card[i],
        "merchant_id": cols.merchant[i],
        "amount": cols.amount[i],
        "currency": cols.currency[i],
        "timestamp": cols.at[i],
        "merchant_category": cols.mcc[i],
        "country": cols.country[i],
        "channel": cols.channel[i],
    }
    if cols.located[i]:
        data["lat"] = cols.lat[i]
        data["lon"] = cols.lon[i]
    device = cols.device[i]
    if device is not None:
        data["device_id"] = device
    data["customer_id"] = cols.customer[i]
    return Record("transaction", cols.at[i], data, cols.truth[i])


def records(
    cols: Columns, tx_time: IntArray, labels: Labels, label_at: list[str]
) -> Iterator[Record]:
    """Transactions and labels merged by event time (on a tie: transactions first, then order)."""
    verdicts = labels.is_fraud.tolist()
    sources = [SOURCES[s] for s in labels.source.tolist()]
    rows = labels.row.tolist()
    for kind, index in merge_order(tx_time, labels.time):
        if kind == 0:
            yield transaction(cols, index)
            continue
        data = {
            "transaction_id": cols.ids[rows[index]],
            "is_fraud": verdicts[index],
            "labeled_at": label_at[index],
            "source": sources[index],
        }
        yield Record("label", label_at[index], data)


def merge_order(tx_time: IntArray, label_time: IntArray) -> list[tuple[int, int]]:
    """(kind, index) pairs in stream order: kind 0 = transaction, 1 = label.

    >>> merge_order(np.array([0, 5]), np.array([5, 1]))
    [(0, 0), (1, 1), (0, 1), (1, 0)]
    """
    times = np.concatenate([tx_time, label_time])
    kinds = np.r_[np.zeros(len(tx_time), np.int64), np.ones(len(label_time), np.int64)]
    index = np.r_[np.arange(len(tx_time)), np.arange(len(label_time))]
    order = np.lexsort((index, kinds, times))
    return list(zip(kinds[order].tolist(), index[order].tolist(), strict=True))
