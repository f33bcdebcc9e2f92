"""Genuine spending: daily and weekly rhythm, loyal merchants, some exploring, some travel.

>>> from simulator.config import SimConfig
>>> from simulator.population import build_population
>>> rng = np.random.default_rng(5)
>>> config = SimConfig(cards=30, merchants=60, days=7)
>>> frame = legit_transactions(config, build_population(config, rng), rng)
>>> bool((frame.scenario == -1).all()) and bool((np.diff(frame.time) >= 0).all())
True
"""

from __future__ import annotations

import numpy as np

from simulator import catalog
from simulator.config import SimConfig
from simulator.frame import TxFrame, located, price
from simulator.population import DAY_MS, Population
from simulator.sampling import FloatArray, IntArray

HOUR_MS = 3_600_000
# Relative activity by local hour: quiet nights, a lunch peak and an evening peak.
HOUR_PROFILE = np.array(
    [
        0.3,
        0.2,
        0.15,
        0.1,
        0.1,
        0.2,
        0.5,
        1.0,
        1.5,
        1.8,
        2.0,
        2.3,
        2.8,
        2.5,
        2.0,
        2.0,
        2.2,
        2.6,
        2.8,
        2.6,
        2.2,
        1.6,
        1.0,
        0.6,
    ]
)
HOUR_CDF = np.cumsum(HOUR_PROFILE) / HOUR_PROFILE.sum()
EXPLORE = 0.08  # share of purchases away from the card's regular merchants
NEW_DEVICE = 0.02  # share of online purchases from a device never used before
FOREIGN_ONLINE = 0.03  # share of online purchases seen from another country


def legit_transactions(config: SimConfig, world: Population, rng: np.random.Generator) -> TxFrame:
    """Every genuine transaction of the period, sorted by time."""
    period_ms = int(config.days * DAY_MS)
    counts = rng.poisson(world.card_rate * config.days)
    card = np.repeat(np.arange(len(world.card_ids)), counts)
    time = _arrival_times(config, world, card, rng)
    keep = (time >= world.card_active_from[card]) & (time < period_ms)
    order = np.argsort(time[keep], kind="stable")
    card, time = card[keep][order], time[keep][order]
    merchant = _merchants(world, card, rng)
    trip_city, trip_country = _trips(config, world, card, time, rng)
    travelling = trip_city >= 0
    present = world.merchant_channel[merchant] != catalog.ECOM
    moved = travelling & present & (rng.random(len(card)) < 0.9)
    uniforms = rng.random(int(moved.sum()))
    merchant[moved] = world.in_city.sample(trip_city[moved], uniforms)
    country = np.where(travelling, trip_country, world.card_country(card))
    abroad = rng.random(len(card)) < FOREIGN_ONLINE
    country[abroad] = rng.integers(0, len(world.cities.countries), int(abroad.sum()))
    device = _devices(world, card, rng)
    return located(
        world,
        card,
        merchant,
        time,
        price(world, card, merchant, rng),
        device=device,
        country=country,
    )


def _arrival_times(
    config: SimConfig, world: Population, card: IntArray, rng: np.random.Generator
) -> IntArray:
    """Day by the holder's weekend habit, local hour by the daily rhythm, then to UTC."""
    n_days = int(np.ceil(config.days))
    weekday = (config.start.weekday() + np.arange(n_days)) % 7
    weekend_days, work_days = np.flatnonzero(weekday >= 5), np.flatnonzero(weekday < 5)
    customer = world.card_customer[card]
    factor = world.customer_weekend[customer] * len(weekend_days)
    on_weekend = rng.random(len(card)) < factor / (factor + len(work_days))
    day = np.where(
        on_weekend,
        _pick(weekend_days, len(card), rng, n_days),
        _pick(work_days, len(card), rng, n_days),
    )
    hour = np.searchsorted(HOUR_CDF, rng.random(len(card)), side="right")
    local = (hour + world.customer_shift[customer]) % 24
    tz = np.round(world.cities.lon[world.customer_city[customer]] / 15.0).astype(np.int64)
    within = rng.integers(0, HOUR_MS, len(card))
    return np.asarray(day * DAY_MS + (local - tz) * HOUR_MS + within, dtype=np.int64)


def _pick(days: IntArray, size: int, rng: np.random.Generator, n_days: int) -> IntArray:
    pool = days if len(days) else np.arange(n_days)
    return np.asarray(pool[rng.integers(0, len(pool), size)], dtype=np.int64)


def _merchants(world: Population, card: IntArray, rng: np.random.Generator) -> IntArray:
    """Mostly one of the card's regulars; sometimes a new local shop or a new online store."""
    slot = (rng.random(len(card))[:, None] > world.favourite_cum[card]).sum(axis=1)
    merchant = world.favourites[card, np.minimum(slot, world.favourites.shape[1] - 1)]
    explore = np.flatnonzero(rng.random(len(card)) < EXPLORE)
    profile_cum = np.cumsum(world.customer_profile[world.card_customer[card[explore]]], axis=1)
    category = (rng.random(len(explore))[:, None] > profile_cum).sum(axis=1)
    category = np.minimum(category, len(catalog.CATEGORIES) - 1)
    online = (rng.random(len(explore)) < catalog.ECOM_SHARES[category]) & world.online.has(category)
    local = world.in_city.sample(world.card_city(card[explore]), rng.random(len(explore)))
    remote = world.online.sample(np.where(online, category, 0), rng.random(len(explore)))
    merchant[explore] = np.where(online, remote, local)
    return np.asarray(merchant, dtype=np.int64)


def _trips(
    config: SimConfig,
    world: Population,
    card: IntArray,
    time: IntArray,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray]:
    """Destination city and country of each transaction made while travelling (else -1)."""
    n = len(world.customer_city)
    period_ms = config.days * DAY_MS
    travels = rng.random(n) < min(0.9, config.travel_rate * config.days / 30.0)
    start = rng.uniform(-2 * DAY_MS, period_ms, n)
    end = start + rng.uniform(2, 8, n) * DAY_MS
    cities = world.cities
    home_pool, foreign_pool = np.flatnonzero(cities.home), np.flatnonzero(~cities.home)
    abroad = (rng.random(n) < 0.5) & (len(foreign_pool) > 0)
    domestic = home_pool[rng.integers(0, len(home_pool), n)]
    foreign = (
        foreign_pool[rng.integers(0, max(1, len(foreign_pool)), n)]
        if len(foreign_pool)
        else domestic
    )
    destination = np.where(abroad, foreign, domestic)
    travels &= destination != world.customer_city
    customer = world.card_customer[card]
    inside = travels[customer] & (time >= start[customer]) & (time < end[customer])
    city = np.where(inside, destination[customer], -1)
    return city, np.where(inside, cities.country[np.maximum(city, 0)], -1)


def _devices(world: Population, card: IntArray, rng: np.random.Generator) -> IntArray:
    """One of the holder's own devices, now and then a device never seen before."""
    customer = world.card_customer[card]
    slot = rng.integers(0, 2**31, len(card)) % world.n_devices[customer]
    device = world.devices[customer, slot]
    fresh = rng.random(len(card)) < NEW_DEVICE
    return np.where(fresh, rng.integers(1, 2**40, len(card)), device)


def typical_amount(world: Population, card: IntArray) -> FloatArray:
    """A card's usual ticket size (used to scale fraud relative to the victim's habits)."""
    return np.asarray(30.0 * np.exp(world.customer_wealth[world.card_customer[card]]))
