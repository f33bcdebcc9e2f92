"""The simulated world: cities, cardholders, their cards and devices, and merchants.

Faker (seeded) picks real places; numpy draws everything else. Ids are tokens with short
digit runs (``card_000123``), never anything shaped like a card number.

>>> from simulator.config import SimConfig
>>> world = build_population(SimConfig(cards=50, merchants=60), np.random.default_rng(1))
>>> world.card_ids[0], len(world.card_ids), world.merchant_ids[0]
('card_000000', 50, 'merch_00000')
>>> bool((world.merchant_channel[world.merchant_city < 0] == catalog.ECOM).all())
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from faker import Faker

from simulator import catalog, geo
from simulator.config import SimConfig
from simulator.sampling import FloatArray, GroupSampler, IntArray, gumbel_top_k

FAVOURITES = 12
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Population:
    """Column arrays describing customers, cards and merchants (index = entity number)."""

    cities: geo.Cities
    customer_ids: list[str]
    customer_city: IntArray
    customer_wealth: FloatArray  # log-scale multiplier of every amount
    customer_shift: IntArray  # hours the daily rhythm is shifted (early birds, night owls)
    customer_weekend: FloatArray  # weekend-day activity relative to a weekday
    customer_profile: FloatArray  # [customer, category] spending shares
    devices: IntArray  # [customer, 3] device numbers; columns past n_devices are unused
    n_devices: IntArray
    card_ids: list[str]
    card_customer: IntArray
    card_rate: FloatArray  # transactions per day
    card_active_from: IntArray  # ms after the start of the period
    favourites: IntArray  # [card, FAVOURITES] merchant numbers
    favourite_cum: FloatArray  # [card, FAVOURITES] cumulative choice probabilities
    merchant_ids: list[str]
    merchant_city: IntArray  # -1 for online merchants
    merchant_category: IntArray
    merchant_channel: IntArray
    merchant_lat: FloatArray
    merchant_lon: FloatArray
    merchant_offset: FloatArray  # log-scale price level of the merchant
    in_city: GroupSampler  # card-present merchants by city, weighted by popularity
    online: GroupSampler  # online merchants by category, weighted by popularity

    def card_city(self, cards: IntArray) -> IntArray:
        """Home city of each card's holder."""
        return self.customer_city[self.card_customer[cards]]

    def card_country(self, cards: IntArray) -> IntArray:
        """Home country (index into ``cities.countries``) of each card's holder."""
        return self.cities.country[self.card_city(cards)]

    def holder_name(self, customer: int, seed: int = 0) -> str:
        """A stable fake name for a customer, made on demand (never put on the wire)."""
        fake = Faker()
        fake.seed_instance(seed * 1_000_003 + customer)
        return str(fake.name())


def build_population(config: SimConfig, rng: np.random.Generator) -> Population:
    """Draw a whole population; the same config and generator state give the same world."""
    fake = Faker()
    fake.seed_instance(config.seed)
    cities = geo.pick_cities(
        fake, rng, config.home_countries, config.home_cities, config.foreign_cities
    )
    customers = _customers(config, cities, rng)
    merchants = _merchants(config.merchant_count, cities, rng)
    cards = _cards(config, len(customers["city"]), rng)
    fav, fav_cum = _favourites(cards["customer"], customers, merchants, rng)
    return Population(
        cities=cities,
        customer_ids=[f"cust_{i:06d}" for i in range(len(customers["city"]))],
        customer_city=customers["city"].astype(np.int64),
        customer_wealth=customers["wealth"],
        customer_shift=customers["shift"].astype(np.int64),
        customer_weekend=customers["weekend"],
        customer_profile=customers["profile"],
        devices=customers["devices"].astype(np.int64),
        n_devices=customers["n_devices"].astype(np.int64),
        card_ids=[f"card_{i:06d}" for i in range(config.cards)],
        card_customer=cards["customer"].astype(np.int64),
        card_rate=cards["rate"],
        card_active_from=cards["active_from"].astype(np.int64),
        favourites=fav,
        favourite_cum=fav_cum,
        merchant_ids=[f"merch_{i:05d}" for i in range(len(merchants["city"]))],
        merchant_city=merchants["city"].astype(np.int64),
        merchant_category=merchants["category"].astype(np.int64),
        merchant_channel=merchants["channel"].astype(np.int64),
        merchant_lat=merchants["lat"],
        merchant_lon=merchants["lon"],
        merchant_offset=merchants["offset"],
        in_city=_city_sampler(merchants, len(cities.name)),
        online=_online_sampler(merchants),
    )


Columns = dict[str, npt.NDArray[Any]]


def _customers(config: SimConfig, cities: geo.Cities, rng: np.random.Generator) -> Columns:
    n = max(1, round(config.cards / 1.15))  # some customers hold a second card
    home = np.flatnonzero(cities.home)
    weights = cities.weight[home] / cities.weight[home].sum()
    n_devices = rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15])
    profile = rng.dirichlet(catalog.SPEND_WEIGHTS * 30.0, size=n)
    return {
        "city": home[rng.choice(len(home), size=n, p=weights)],
        "wealth": rng.normal(0.0, 0.35, size=n),
        "shift": rng.integers(-2, 3, size=n).astype(np.float64),
        "weekend": rng.uniform(0.6, 1.7, size=n),
        "profile": profile,
        "devices": rng.integers(1, 2**40, size=(n, 3)).astype(np.float64),
        "n_devices": n_devices.astype(np.float64),
    }


def _cards(config: SimConfig, n_customers: int, rng: np.random.Generator) -> Columns:
    extra = config.cards - min(config.cards, n_customers)
    owner = np.concatenate(
        [np.arange(min(config.cards, n_customers)), rng.integers(0, n_customers, size=extra)]
    )
    owner = owner[rng.permutation(config.cards)]
    period_ms = config.days * DAY_MS
    is_new = rng.random(config.cards) < config.new_card_share
    active_from = np.where(is_new, rng.uniform(0, 0.8 * period_ms, config.cards), 0.0)
    rate = config.tx_per_day * rng.lognormal(-0.18, 0.6, size=config.cards)
    return {
        "customer": owner.astype(np.float64),
        "rate": rate,
        "active_from": np.floor(active_from),
    }


def _merchants(count: int, cities: geo.Cities, rng: np.random.Generator) -> Columns:
    n_ecom = max(10, round(0.22 * count))
    home, foreign = np.flatnonzero(cities.home), np.flatnonzero(~cities.home)
    n_foreign = max(len(foreign), round(0.12 * count)) if len(foreign) else 0
    n_home = max(len(home), count - n_ecom - n_foreign)
    city = np.concatenate(
        [
            _spread(home, cities.weight[home], n_home, rng),
            _spread(foreign, cities.weight[foreign], n_foreign, rng),
            np.full(n_ecom, -1),
        ]
    )
    pos_weights = catalog.MERCHANT_WEIGHTS * (1 - catalog.ECOM_SHARES)
    ecom_weights = catalog.MERCHANT_WEIGHTS * catalog.ECOM_SHARES
    n_pos = n_home + n_foreign
    category = np.concatenate(
        [
            rng.choice(len(pos_weights), size=n_pos, p=pos_weights / pos_weights.sum()),
            rng.choice(len(ecom_weights), size=n_ecom, p=ecom_weights / ecom_weights.sum()),
        ]
    )
    channel = np.where(
        city < 0, catalog.ECOM, np.where(category == catalog.ATM_CATEGORY, catalog.ATM, catalog.POS)
    )
    located = np.maximum(city, 0)
    lat = np.clip(cities.lat[located] + rng.normal(0, 0.03, len(city)), -89.9, 89.9)
    lon = (cities.lon[located] + rng.normal(0, 0.04, len(city)) + 180.0) % 360.0 - 180.0
    return {
        "city": city.astype(np.float64),
        "category": category.astype(np.float64),
        "channel": channel.astype(np.float64),
        "lat": np.where(city < 0, np.nan, lat),
        "lon": np.where(city < 0, np.nan, lon),
        "popularity": rng.lognormal(0.0, 0.9, size=len(city)),
        "offset": rng.normal(0.0, 0.25, size=len(city)),
    }


def _spread(cities: IntArray, weights: FloatArray, n: int, rng: np.random.Generator) -> IntArray:
    """``n`` merchants over ``cities`` in proportion to size, at least one per city."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    rest = rng.choice(cities, size=n - len(cities), p=weights / weights.sum())
    return np.concatenate([cities, rest]).astype(np.int64)


def _city_sampler(merchants: Columns, n_cities: int) -> GroupSampler:
    pos = np.flatnonzero(merchants["city"] >= 0)
    inner = GroupSampler.build(
        merchants["city"][pos].astype(np.int64), merchants["popularity"][pos], n_cities
    )
    return GroupSampler(pos[inner.items], inner.cum, inner.counts)


def _online_sampler(merchants: Columns) -> GroupSampler:
    ecom = np.flatnonzero(merchants["city"] < 0)
    groups = merchants["category"][ecom].astype(np.int64)
    inner = GroupSampler.build(groups, merchants["popularity"][ecom], len(catalog.CATEGORIES))
    return GroupSampler(ecom[inner.items], inner.cum, inner.counts)


def _favourites(
    card_customer: npt.NDArray[np.float64],
    customers: Columns,
    merchants: Columns,
    rng: np.random.Generator,
) -> tuple[IntArray, FloatArray]:
    """Each card's regular merchants (local shops and online ones) and how loyal it is to them."""
    owners = card_customer.astype(np.int64)
    card_city = customers["city"].astype(np.int64)[owners]
    category = merchants["category"].astype(np.int64)
    online = merchants["city"] < 0
    channel_share = np.where(
        online, catalog.ECOM_SHARES[category], 1 - catalog.ECOM_SHARES[category]
    )
    fav = np.zeros((len(owners), FAVOURITES), dtype=np.int64)
    weight = np.zeros((len(owners), FAVOURITES))
    for city in np.unique(card_city):
        cards = np.flatnonzero(card_city == city)
        cand = np.flatnonzero(online | (merchants["city"] == city))
        per_cat = np.bincount(category[cand], minlength=len(catalog.CATEGORIES))[category[cand]]
        base = channel_share[cand] * merchants["popularity"][cand] / per_cat
        w = customers["profile"][owners[cards]][:, category[cand]] * base + 1e-12
        top = gumbel_top_k(np.log(w), FAVOURITES, rng)
        chosen = np.take_along_axis(w, top, axis=1) * rng.gamma(1.0, size=top.shape)
        fav[cards, : top.shape[1]] = cand[top]
        weight[cards, : top.shape[1]] = chosen
    cum = np.cumsum(weight, axis=1)
    cum /= cum[:, -1:]
    cum[:, -1] = 1.0
    return fav, cum
