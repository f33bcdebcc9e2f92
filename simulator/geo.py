"""Places: home cities of the card issuer's market and foreign destinations, picked by Faker.

>>> from faker import Faker
>>> fake = Faker()
>>> fake.seed_instance(3)
>>> cities = pick_cities(fake, np.random.default_rng(3), ("FR",), 5, 4)
>>> int(cities.home.sum()), int((~cities.home).sum())
(5, 4)
>>> {cities.countries[c] for c in cities.country[cities.home]}
{'FR'}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from faker import Faker

from simulator import catalog
from simulator.sampling import FloatArray, IntArray


@dataclass(frozen=True)
class Cities:
    """Home cities first, then foreign ones; ``country`` indexes ``countries``."""

    name: list[str]
    lat: FloatArray
    lon: FloatArray
    country: IntArray
    home: npt.NDArray[np.bool_]
    weight: FloatArray  # relative size (population proxy)
    countries: list[str]  # wire country codes


Place = tuple[str, ...]  # (lat, lon, name, country, timezone)


def pick_cities(
    fake: Faker,
    rng: np.random.Generator,
    home_countries: tuple[str, ...],
    n_home: int,
    n_foreign: int,
) -> Cities:
    """Up to ``n_home`` distinct places in ``home_countries`` and ``n_foreign`` elsewhere."""
    home = _distinct(
        lambda: fake.local_latlng(country_code=fake.random_element(home_countries)), n_home
    )
    if not home:
        raise ValueError(f"Faker knows no place in {', '.join(home_countries)}")
    known = {place[2] for place in home}
    foreign = _distinct(lambda: _foreign(fake.location_on_land(), home_countries, known), n_foreign)
    places = home + foreign
    codes = [catalog.wire_country(place[3]) for place in places]
    countries = list(dict.fromkeys(codes))
    return Cities(
        name=[place[2] for place in places],
        lat=np.array([float(place[0]) for place in places]),
        lon=np.array([float(place[1]) for place in places]),
        country=np.array([countries.index(code) for code in codes], dtype=np.int64),
        home=np.arange(len(places)) < len(home),
        weight=rng.lognormal(0.0, 1.0, size=len(places)),
        countries=countries,
    )


def _foreign(place: Place, home_countries: tuple[str, ...], known: set[str]) -> Place | None:
    return None if place[3] in home_countries or place[2] in known else place


def _distinct(draw: Callable[[], Place | None], n: int) -> list[Place]:
    """Draw until ``n`` distinct places (by name) or the tries run out."""
    found: dict[str, Place] = {}
    for _ in range(n * 50):
        if len(found) >= n:
            break
        place = draw()
        if place is not None:
            found.setdefault(place[2], place)
    return list(found.values())
