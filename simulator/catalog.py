"""Static reference data: merchant categories, channels, currencies and distances.

Amounts are modelled in the cardholder's billing currency; the category table gives the
median and spread of a log-normal amount per category.

>>> CATEGORIES[0].mcc, CATEGORIES[0].name
('5411', 'grocery')
>>> currency_of("FR"), currency_of("GB"), currency_of("AQ")
('EUR', 'GBP', 'USD')
>>> round(float(haversine_km(48.8566, 2.3522, 51.5072, -0.1276)))
344
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from features import schema

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Channel codes used in the columnar frames; the wire value is CHANNELS[code].
POS: Final = 0
ECOM: Final = 1
ATM: Final = 2
CHANNELS: Final = ("pos", "ecom", "atm")


@dataclass(frozen=True)
class Category:
    """A merchant category: its MCC, where it sells and what it usually charges.

    ``ecom_share`` is the share of its merchants that sell online; ``weight`` is its share of
    everyday spending; ``merchants`` its share of merchants.
    """

    mcc: str
    name: str
    median: float
    sigma: float
    ecom_share: float
    weight: float
    merchants: float


CATEGORIES: Final = (
    Category("5411", "grocery", 34.0, 0.6, 0.05, 0.24, 0.14),
    Category("5812", "restaurant", 28.0, 0.55, 0.0, 0.11, 0.14),
    Category("5814", "fast_food", 11.0, 0.45, 0.0, 0.11, 0.10),
    Category("5541", "fuel", 48.0, 0.4, 0.0, 0.07, 0.06),
    Category("5912", "pharmacy", 17.0, 0.6, 0.1, 0.05, 0.05),
    Category("5311", "department_store", 65.0, 0.8, 0.4, 0.05, 0.05),
    Category("5651", "clothing", 58.0, 0.7, 0.4, 0.06, 0.08),
    Category("5732", "electronics", 140.0, 1.0, 0.5, 0.03, 0.05),
    Category("5944", "jewellery", 230.0, 0.9, 0.2, 0.005, 0.02),
    Category("4111", "transport", 4.5, 0.6, 0.3, 0.06, 0.03),
    Category("5815", "digital_goods", 6.0, 0.8, 1.0, 0.06, 0.06),
    Category("5999", "marketplace", 38.0, 0.9, 0.8, 0.07, 0.07),
    Category("4814", "telecom", 30.0, 0.4, 1.0, 0.02, 0.02),
    Category("7011", "hotel", 140.0, 0.6, 0.3, 0.01, 0.03),
    Category("4511", "airline", 280.0, 0.7, 1.0, 0.01, 0.01),
    Category("6011", "atm", 80.0, 0.6, 0.0, 0.035, 0.06),
    Category("8398", "charity", 20.0, 0.7, 1.0, 0.005, 0.01),
)
CATEGORY_INDEX: Final = {c.name: i for i, c in enumerate(CATEGORIES)}
MCCS: Final = tuple(c.mcc for c in CATEGORIES)
MEDIANS: Final = np.array([c.median for c in CATEGORIES])
SIGMAS: Final = np.array([c.sigma for c in CATEGORIES])
SPEND_WEIGHTS: Final = np.array([c.weight for c in CATEGORIES])
MERCHANT_WEIGHTS: Final = np.array([c.merchants for c in CATEGORIES])
ECOM_SHARES: Final = np.array([c.ecom_share for c in CATEGORIES])


def category_ids(*names: str) -> IntArray:
    """Indices into :data:`CATEGORIES` of the named categories."""
    return np.array([CATEGORY_INDEX[name] for name in names], dtype=np.int64)


# Card testers favour cheap online goods and donations; thieves favour resellable goods.
TESTING_CATEGORIES: Final = category_ids("digital_goods", "charity", "marketplace")
HIGH_VALUE_CATEGORIES: Final = category_ids(
    "electronics", "jewellery", "department_store", "clothing", "atm"
)
TAKEOVER_CATEGORIES: Final = category_ids("electronics", "marketplace", "department_store")
ATM_CATEGORY: Final = CATEGORY_INDEX["atm"]

_EURO = frozenset(
    {
        "AD",
        "AT",
        "BE",
        "CY",
        "DE",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MC",
        "ME",
        "MT",
        "NL",
        "PT",
        "SI",
        "SK",
        "SM",
        "VA",
        "XK",
    }
)
_OWN_CURRENCY = {
    "AE": "AED",
    "AR": "ARS",
    "AU": "AUD",
    "BG": "BGN",
    "BH": "BHD",
    "BR": "BRL",
    "CA": "CAD",
    "CH": "CHF",
    "CL": "CLP",
    "CN": "CNY",
    "CO": "COP",
    "CZ": "CZK",
    "DK": "DKK",
    "EG": "EGP",
    "GB": "GBP",
    "HK": "HKD",
    "HU": "HUF",
    "ID": "IDR",
    "IL": "ILS",
    "IN": "INR",
    "IS": "ISK",
    "JP": "JPY",
    "KE": "KES",
    "KR": "KRW",
    "KW": "KWD",
    "MA": "MAD",
    "MX": "MXN",
    "MY": "MYR",
    "NG": "NGN",
    "NO": "NOK",
    "NZ": "NZD",
    "PE": "PEN",
    "PH": "PHP",
    "PK": "PKR",
    "PL": "PLN",
    "QA": "QAR",
    "RO": "RON",
    "RS": "RSD",
    "SA": "SAR",
    "SE": "SEK",
    "SG": "SGD",
    "TH": "THB",
    "TR": "TRY",
    "TW": "TWD",
    "UA": "UAH",
    "US": "USD",
    "VN": "VND",
    "ZA": "ZAR",
}


def currency_of(country: str) -> str:
    """Billing currency of a card issued in ``country`` (USD where we know no better)."""
    code = "EUR" if country in _EURO else _OWN_CURRENCY.get(country, "USD")
    return code if code in schema.CURRENCIES else "USD"


def wire_country(country: str) -> str:
    """``country`` if the wire schema accepts it, else a neighbour it does accept."""
    # Faker lists Kosovo (XK), which ISO 3166 has not assigned; Serbia is its neighbour.
    return country if country in schema.COUNTRIES else "RS"


def haversine_km(
    lat1: FloatArray | float,
    lon1: FloatArray | float,
    lat2: FloatArray | float,
    lon2: FloatArray | float,
) -> FloatArray:
    """Great-circle distance in km, element-wise."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return np.asarray(2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))), dtype=np.float64)
