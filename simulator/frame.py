"""A columnar batch of transactions (numpy arrays), and the pricing shared by all behaviours.

>>> frame = TxFrame.empty()
>>> len(TxFrame.concat([frame, frame]))
0
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from simulator import catalog
from simulator.population import Population
from simulator.sampling import FloatArray, IntArray

LEGIT = -1  # scenario code of a genuine transaction
NO_DEVICE = 0


@dataclass
class TxFrame:
    """Transactions as parallel arrays; times are ms after the start of the period.

    ``country`` indexes ``Population.cities.countries``; ``lat``/``lon`` are NaN and
    ``device`` is :data:`NO_DEVICE` where the transaction has none; ``scenario`` indexes
    :data:`simulator.config.SCENARIOS` (:data:`LEGIT` for genuine ones) and ``incident``
    groups the fraud of one attack (reported together).
    """

    time: IntArray
    card: IntArray
    merchant: IntArray
    amount: FloatArray
    channel: IntArray
    country: IntArray
    lat: FloatArray
    lon: FloatArray
    device: IntArray
    scenario: IntArray
    incident: IntArray

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def empty(cls) -> TxFrame:
        """A frame with no rows."""

        def ints() -> IntArray:
            return np.empty(0, dtype=np.int64)

        def floats() -> FloatArray:
            return np.empty(0, dtype=np.float64)

        return cls(
            ints(),
            ints(),
            ints(),
            floats(),
            ints(),
            ints(),
            floats(),
            floats(),
            ints(),
            ints(),
            ints(),
        )

    @classmethod
    def concat(cls, frames: list[TxFrame]) -> TxFrame:
        """All rows of ``frames``, in order."""
        if not frames:
            return cls.empty()
        columns = {
            f.name: np.concatenate([getattr(fr, f.name) for fr in frames]) for f in fields(cls)
        }
        return cls(**columns)

    def take(self, rows: IntArray) -> TxFrame:
        """The given rows, in the given order."""
        return TxFrame(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def located(
    world: Population,
    card: IntArray,
    merchant: IntArray,
    time: IntArray,
    amount: FloatArray,
    *,
    device: IntArray | None = None,
    country: IntArray | None = None,
) -> TxFrame:
    """Genuine-looking rows at ``merchant``: channel, country and position come from it.

    Online rows take ``country`` (default: the cardholder's home country) and ``device``;
    card-present rows take the merchant's city and coordinates and carry no device.
    """
    channel = world.merchant_channel[merchant]
    present = channel != catalog.ECOM
    home = world.card_country(card) if country is None else country
    city_country = world.cities.country[np.maximum(world.merchant_city[merchant], 0)]
    devices = np.full(len(card), NO_DEVICE, dtype=np.int64) if device is None else device
    return TxFrame(
        time=time.astype(np.int64),
        card=card.astype(np.int64),
        merchant=merchant.astype(np.int64),
        amount=amount,
        channel=channel,
        country=np.where(present, city_country, home),
        lat=np.where(present, world.merchant_lat[merchant], np.nan),
        lon=np.where(present, world.merchant_lon[merchant], np.nan),
        device=np.where(present, NO_DEVICE, devices),
        scenario=np.full(len(card), LEGIT, dtype=np.int64),
        incident=np.full(len(card), -1, dtype=np.int64),
    )


def price(
    world: Population,
    card: IntArray,
    merchant: IntArray,
    rng: np.random.Generator,
    scale: FloatArray | float = 1.0,
) -> FloatArray:
    """Amounts a card's holder pays at ``merchant``: log-normal by category, price level, wealth.

    ``scale`` multiplies the result (fraud inflates it). ATM amounts are round; a share of
    digital goods end in .99; everything is rounded to cents.
    """
    category = world.merchant_category[merchant]
    wealth = world.customer_wealth[world.card_customer[card]]
    mu = np.log(catalog.MEDIANS[category]) + world.merchant_offset[merchant] + wealth
    raw = np.exp(mu + catalog.SIGMAS[category] * rng.standard_normal(len(card))) * scale
    atm = category == catalog.ATM_CATEGORY
    raw = np.where(atm, np.maximum(np.round(raw / 20.0) * 20.0, 20.0), raw)
    digital = (category == catalog.CATEGORY_INDEX["digital_goods"]) & (raw >= 1.0)
    charm = digital & (rng.random(len(card)) < 0.4)
    raw = np.where(charm, np.floor(raw) + 0.99, raw)
    return round_amounts(raw)


def round_amounts(raw: FloatArray) -> FloatArray:
    """Cents, at least 0.10 and at most 50,000 (well inside the wire bound)."""
    return np.asarray(np.round(np.clip(raw, 0.10, 50_000.0), 2), dtype=np.float64)
