"""Attacks that turn genuine-looking traffic into fraud: breached merchants, compromised cards.

A breached merchant's transactions are fraudulent for a while (only its confirmed-fraud history
gives it away), and cards seen there then suffer online fraud elsewhere. A compromised card has
a share of its transactions over two weeks replaced by fraud with inflated amounts.

>>> from simulator.config import SimConfig
>>> from simulator.legit import legit_transactions
>>> from simulator.population import build_population
>>> from simulator.scenarios import Attack
>>> rng = np.random.default_rng(4)
>>> config = SimConfig(cards=200, merchants=60, days=20)
>>> world = build_population(config, rng)
>>> attack = Attack(config, world, legit_transactions(config, world, rng), rng)
>>> extra = compromise_cards(attack, 30, (0, 10 * 86_400_000), 1.0)
>>> len(extra), int((attack.legit.scenario == 4).sum()) > 0
(0, True)
"""

from __future__ import annotations

import numpy as np

from simulator import catalog
from simulator.config import SCENARIOS
from simulator.frame import LEGIT, TxFrame, located, price
from simulator.population import DAY_MS
from simulator.sampling import IntArray
from simulator.scenarios import MINUTE_MS, Attack, Window

BREACH = SCENARIOS.index("compromised_merchant")
COMPROMISED = SCENARIOS.index("compromised_card")


def _rows_between(times: IntArray, rows: IntArray, start: int, end: int) -> IntArray:
    """The ``rows`` (sorted by time, times given) whose time lies in [start, end)."""
    lo, hi = np.searchsorted(times, [start, end])
    return rows[lo:hi]


def _index(keys: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """Rows grouped by key in ``0..size-1`` (time order kept within a key) and where each starts."""
    order = np.argsort(keys, kind="stable").astype(np.int64)
    starts = np.searchsorted(keys[order], np.arange(size + 1))
    return order, starts.astype(np.int64)


def compromise_cards(attack: Attack, budget: float, window: Window, factor: float) -> TxFrame:
    """Relabel a share of the victims' transactions over ``compromised_card_days``."""
    legit, rng, config = attack.legit, attack.rng, attack.config
    order, starts = _index(legit.card, len(attack.world.card_ids))
    busy = np.flatnonzero(attack.world.card_rate >= 0.5 * config.tx_per_day)
    spent, tries = 0, 0
    while spent < budget and tries < 1000 and len(busy):
        tries += 1
        start = int(rng.integers(window[0], max(window[0] + 1, window[1])))
        card = int(busy[rng.integers(0, len(busy))])
        if card in attack.compromised:
            continue  # a card is compromised once (then it is reissued)
        rows = order[starts[card] : starts[card + 1]]
        end = start + int(config.compromised_card_days * DAY_MS)
        rows = _rows_between(legit.time[rows], rows, start, end)
        rows = rows[(legit.scenario[rows] == LEGIT)]
        rows = rows[rng.random(len(rows)) < config.compromised_card_share]
        if len(rows) == 0:
            continue
        if not attack.fits(spent, len(rows), budget):
            break
        legit.scenario[rows] = COMPROMISED
        attack.compromised.add(card)
        legit.incident[rows] = attack.new_incident()
        inflate = rng.uniform(3.0, 7.0, len(rows)) * factor
        legit.amount[rows] = np.round(np.clip(legit.amount[rows] * inflate, 0.1, 50_000.0), 2)
        spent += len(rows)
    return TxFrame.empty()


def breach_merchants(attack: Attack, budget: float, window: Window, factor: float) -> TxFrame:
    """Breach card-present merchants; return the follow-up fraud on the cards seen there."""
    legit, world, rng, config = attack.legit, attack.world, attack.rng, attack.config
    order, starts = _index(legit.merchant, len(world.merchant_ids))
    targets = np.flatnonzero(
        world.cities.home[np.maximum(world.merchant_city, 0)] & (world.merchant_city >= 0)
    )
    followups: list[TxFrame] = []
    spent, tries = 0.0, 0
    while spent < budget and tries < 1000 and len(targets):
        tries += 1
        merchant = int(targets[rng.integers(0, len(targets))])
        start = int(rng.integers(window[0], max(window[0] + 1, window[1])))
        end = start + int(rng.uniform(*config.breach_days) * DAY_MS)
        rows = order[starts[merchant] : starts[merchant + 1]]
        rows = _rows_between(legit.time[rows], rows, start, end)
        rows = rows[legit.scenario[rows] == LEGIT]
        cards = np.unique(legit.card[rows])
        expected = config.breach_share * len(rows) + config.followup_share * len(cards) * 3.5
        if len(rows) == 0 or expected > 2 * (budget - spent) + 10:
            continue  # too quiet to notice or far too big for the budget: try another
        if not attack.fits(spent, expected, budget):
            break
        fraud = rows[rng.random(len(rows)) < config.breach_share]
        legit.scenario[fraud] = BREACH
        for card in np.unique(legit.card[fraud]):
            legit.incident[fraud[legit.card[fraud] == card]] = attack.new_incident()
        extra = _followups(attack, rows, factor)
        followups.extend(extra)
        spent += len(fraud) + sum(len(frame) for frame in extra)
    return TxFrame.concat(followups)


def _followups(attack: Attack, seen: IntArray, factor: float) -> list[TxFrame]:
    """Cards seen at a breached merchant are later used online by whoever bought the data."""
    legit, rng = attack.legit, attack.rng
    horizon = int(attack.config.days * DAY_MS)
    frames = []
    for card in np.unique(legit.card[seen]):
        if rng.random() >= attack.config.followup_share:
            continue
        last_visit = int(legit.time[seen[legit.card[seen] == card]].max())
        start = last_visit + int(rng.uniform(1.0, 10.0) * DAY_MS)
        if start >= horizon:
            continue
        n = int(rng.integers(2, 6))
        time = start + np.cumsum(rng.exponential(180 * MINUTE_MS, n)).astype(np.int64)
        cards = np.full(n, card)
        merchant = attack.online_merchants(catalog.TAKEOVER_CATEGORIES, n)
        amount = price(attack.world, cards, merchant, rng, scale=rng.uniform(1.5, 4.0, n) * factor)
        frame = located(
            attack.world, cards, merchant, time, amount, device=np.full(n, attack.new_device())
        )
        attack.tag(frame, "compromised_merchant")
        frames.append(frame)
    return frames
