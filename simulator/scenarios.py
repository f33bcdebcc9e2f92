"""Attacks that add transactions: card testing, stolen cards and account takeover.

Each planner draws incidents until its fraud budget (a number of transactions) is spent.
The signatures overlap genuine behaviour on purpose: people also buy cheap digital goods,
travel far and shop from new devices.

>>> from simulator.config import SimConfig
>>> from simulator.legit import legit_transactions
>>> from simulator.population import build_population
>>> rng = np.random.default_rng(2)
>>> config = SimConfig(cards=40, merchants=60, days=10)
>>> world = build_population(config, rng)
>>> attack = Attack(config, world, legit_transactions(config, world, rng), rng)
>>> frame = attack.plan("card_testing", 20, (0, 5 * 86_400_000), 1.0)
>>> len(frame) >= 20 and bool((frame.amount < 5).sum() >= 20)
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulator import catalog
from simulator.config import SCENARIOS, SimConfig
from simulator.frame import TxFrame, located, price, round_amounts
from simulator.legit import typical_amount
from simulator.population import DAY_MS, Population
from simulator.sampling import IntArray

MINUTE_MS = 60_000
Window = tuple[int, int]


@dataclass
class Attack:
    """Shared state of the fraud planners: the world, the genuine stream and the dice."""

    config: SimConfig
    world: Population
    legit: TxFrame
    rng: np.random.Generator
    incidents: int = 0
    compromised: set[int] = field(default_factory=set)

    def plan(self, scenario: str, budget: float, window: Window, amount_factor: float) -> TxFrame:
        """Incidents of ``scenario`` starting in ``window`` until ``budget`` rows are spent."""
        make: Callable[[int, float], TxFrame] = {
            "card_testing": self._card_testing,
            "stolen_card": self._stolen_card,
            "account_takeover": self._account_takeover,
        }[scenario]
        frames: list[TxFrame] = []
        spent = 0
        while spent < budget:
            start = int(self.rng.integers(window[0], max(window[0] + 1, window[1])))
            frame = make(start, amount_factor)
            if not self.fits(spent, len(frame), budget):
                break
            self.tag(frame, scenario)
            frames.append(frame)
            spent += len(frame)
        return TxFrame.concat(frames)

    def fits(self, spent: float, size: float, budget: float) -> bool:
        """Whether an incident of ``size`` still fits the budget.

        One that would overshoot is kept with probability (room left / size), so that the
        expected total equals the budget even when incidents are large next to it.
        """
        if spent + size <= budget:
            return True
        return bool(self.rng.random() * size < budget - spent)

    def tag(self, frame: TxFrame, scenario: str) -> None:
        """Mark every row of ``frame`` as one new incident of ``scenario``."""
        frame.scenario[:] = SCENARIOS.index(scenario)
        frame.incident[:] = self.new_incident()

    def new_incident(self) -> int:
        self.incidents += 1
        return self.incidents - 1

    def victim(self, at: int) -> int:
        """A card that had been in use for at least a day at ``at``."""
        for _ in range(100):
            card = int(self.rng.integers(0, len(self.world.card_ids)))
            if self.world.card_active_from[card] <= at - DAY_MS:
                return card
        return int(np.argmin(self.world.card_active_from))

    def new_device(self) -> int:
        return int(self.rng.integers(1, 2**40))

    def online_merchants(self, categories: IntArray, n: int, *, distinct: bool = False) -> IntArray:
        """``n`` online merchants of the given categories (any online one if none exists).

        With ``distinct``, no merchant repeats while the categories have enough of them.
        """
        cats = categories[self.world.online.has(categories)]
        if len(cats) == 0:
            cats = np.flatnonzero(self.world.online.counts > 0)
        if distinct:
            pool = np.flatnonzero(
                np.isin(self.world.merchant_category, cats) & (self.world.merchant_city < 0)
            )
            if len(pool) >= n:
                return np.asarray(self.rng.choice(pool, size=n, replace=False), dtype=np.int64)
        chosen = cats[self.rng.integers(0, len(cats), n)]
        return self.world.online.sample(chosen, self.rng.random(n))

    def _card_testing(self, start: int, factor: float) -> TxFrame:
        """A bot tries a stolen card number with tiny online payments at unfamiliar shops."""
        rng, n = self.rng, int(self.rng.integers(3, 16))
        card = np.full(n, self.victim(start))
        time = start + np.cumsum(rng.exponential(45_000, n)).astype(np.int64)
        merchant = self.online_merchants(catalog.TESTING_CATEGORIES, n, distinct=True)
        amount = np.where(rng.random(n) < 0.3, 1.0, round_amounts(rng.uniform(0.3, 4.99, n)))
        country = self._fraud_country(card[0], foreign_share=0.5)
        frame = located(
            self.world,
            card,
            merchant,
            time,
            amount,
            device=np.full(n, self.new_device()),
            country=np.full(n, country),
        )
        if rng.random() < 0.3:  # the number works: cash it out
            return TxFrame.concat([frame, self._cash_out(frame, factor)])
        return frame

    def _cash_out(self, tested: TxFrame, factor: float) -> TxFrame:
        card = tested.card[-1:]
        time = tested.time[-1:] + int(self.rng.integers(5, 60)) * MINUTE_MS
        merchant = self.online_merchants(catalog.TAKEOVER_CATEGORIES, 1)
        amount = price(self.world, card, merchant, self.rng, scale=3.0 * factor)
        return located(
            self.world,
            card,
            merchant,
            time,
            amount,
            device=tested.device[-1:],
            country=tested.country[-1:],
        )

    def _stolen_card(self, start: int, factor: float) -> TxFrame:
        """A stolen or cloned card spends big, card-present, far from the holder's home."""
        rng, card_no = self.rng, self.victim(start)
        n = int(rng.integers(3, 11))
        city = self._far_city(int(self.world.card_city(np.array([card_no]))[0]))
        local = np.flatnonzero(self.world.merchant_city == city)
        valuable = np.isin(self.world.merchant_category[local], catalog.HIGH_VALUE_CATEGORIES)
        weights = np.where(valuable, 4.0, 1.0)
        merchant = local[rng.choice(len(local), size=n, p=weights / weights.sum())]
        time = start + np.cumsum(rng.exponential(25 * MINUTE_MS, n)).astype(np.int64)
        card = np.full(n, card_no)
        amount = price(self.world, card, merchant, rng, scale=rng.uniform(2.0, 6.0, n) * factor)
        return located(
            self.world, card, merchant, time, amount, device=np.full(n, self.new_device())
        )

    def _far_city(self, home: int) -> int:
        """A city with merchants at least 1,500 km from ``home`` (the farthest if none is)."""
        cities = self.world.cities
        stocked = np.flatnonzero(self.world.in_city.counts > 0)
        stocked = stocked[stocked != home]
        if len(stocked) == 0:
            return home
        distance = catalog.haversine_km(
            cities.lat[home], cities.lon[home], cities.lat[stocked], cities.lon[stocked]
        )
        far = stocked[distance >= 1500.0]
        if len(far) == 0:
            return int(stocked[np.argmax(distance)])
        return int(far[self.rng.integers(0, len(far))])

    def _account_takeover(self, start: int, factor: float) -> TxFrame:
        """Someone takes over the account: a new device abroad, spending more each time."""
        rng, card_no = self.rng, self.victim(start)
        n = int(rng.integers(3, 9))
        span = rng.uniform(0.3, 3.0) * DAY_MS
        time = start + np.sort(rng.uniform(0, span, n)).astype(np.int64)
        card = np.full(n, card_no)
        merchant = self.online_merchants(catalog.TAKEOVER_CATEGORIES, n)
        base = typical_amount(self.world, card[:1]) * rng.uniform(1.2, 2.5)
        growth = rng.uniform(1.3, 1.8) ** (np.arange(n) * factor)
        amount = round_amounts(base * growth * rng.lognormal(0.0, 0.15, n))
        country = self._fraud_country(card_no, foreign_share=0.85)
        return located(
            self.world,
            card,
            merchant,
            time,
            amount,
            device=np.full(n, self.new_device()),
            country=np.full(n, country),
        )

    def _fraud_country(self, card: int, foreign_share: float) -> int:
        """The holder's country, or (with ``foreign_share``) another one."""
        home = int(self.world.card_country(np.array([card]))[0])
        n_countries = len(self.world.cities.countries)
        if n_countries < 2 or self.rng.random() >= foreign_share:
            return home
        other = int(self.rng.integers(0, n_countries - 1))
        return other + 1 if other >= home else other
