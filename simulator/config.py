"""What to simulate: the population size, the fraud mix over time and how labels arrive.

>>> config = SimConfig(days=10, cards=100)
>>> [phase.start for phase in config.phases]
[0.0, 0.5]
>>> config.campaign_onset_fraction()
0.5
>>> SimConfig(fraud_rate=2.0)
Traceback (most recent call last):
...
ValueError: fraud_rate must be in [0, 0.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

SCENARIOS: Final = (
    "card_testing",
    "stolen_card",
    "account_takeover",
    "compromised_merchant",
    "compromised_card",
)
DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_HOME_COUNTRIES: Final = ("FR", "DE", "ES", "IT", "NL", "BE", "PT", "AT", "FI", "IE")


@dataclass(frozen=True)
class Phase:
    """From ``start`` (a fraction of the period) on, fraud follows ``mix``.

    ``mix`` maps scenario names to relative weights of the fraud budget; ``amount_factor``
    scales how far fraud amounts depart from the card's usual spending (fraudsters adapt);
    ``fraud_rate`` overrides the config's rate in this phase.
    """

    start: float
    mix: Mapping[str, float]
    amount_factor: float = 1.0
    fraud_rate: float | None = None


def default_phases(
    onset: float | None = 0.5, campaign: str = "compromised_merchant"
) -> tuple[Phase, ...]:
    """The default drift: ``campaign`` never appears before ``onset``, then takes a large share.

    After the onset the other fraud also gets subtler (amounts closer to normal spending).
    """
    base = {"card_testing": 0.25, "stolen_card": 0.25, "account_takeover": 0.2}
    base["compromised_card"] = 0.3
    first = {name: weight for name, weight in base.items() if name != campaign}
    if onset is None or onset >= 1.0:
        return (Phase(0.0, first),)
    later = {name: weight * 0.65 for name, weight in first.items()}
    later[campaign] = 0.35
    return (Phase(0.0, first), Phase(onset, later, amount_factor=0.85))


@dataclass(frozen=True)
class LabelConfig:
    """How outcomes become known. Delays are in event time; see :mod:`simulator.labels`."""

    chargeback_median_days: float = 7.0
    chargeback_sigma: float = 0.7
    chargeback_min_days: float = 1.0
    chargeback_max_days: float = 60.0
    review_share: float = 0.3
    review_min_hours: float = 1.0
    review_max_hours: float = 48.0
    customer_share: float = 0.15
    customer_median_days: float = 2.0
    unreported_rate: float = 0.1
    false_report_rate: float = 0.001
    genuine_share: float = 1.0
    genuine_median_days: float = 7.0

    def __post_init__(self) -> None:
        for name in ("review_share", "customer_share", "unreported_rate", "genuine_share"):
            _check_fraction(name, getattr(self, name))
        _check_fraction("false_report_rate", self.false_report_rate)
        if self.review_share + self.customer_share > 1.0:
            raise ValueError("review_share + customer_share must be at most 1")
        if not 0 < self.chargeback_min_days <= self.chargeback_median_days:
            raise ValueError("need 0 < chargeback_min_days <= chargeback_median_days")
        if self.chargeback_max_days < self.chargeback_median_days:
            raise ValueError("chargeback_max_days must be >= chargeback_median_days")
        if not 0 < self.review_min_hours <= self.review_max_hours:
            raise ValueError("need 0 < review_min_hours <= review_max_hours")


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines a stream; the same config gives byte-identical output."""

    seed: int = 7
    start: datetime = DEFAULT_START
    days: float = 30.0
    cards: int = 5000
    merchants: int | None = None
    fraud_rate: float = 0.01
    phases: tuple[Phase, ...] = field(default_factory=default_phases)
    labels: LabelConfig = field(default_factory=LabelConfig)
    home_countries: tuple[str, ...] = DEFAULT_HOME_COUNTRIES
    home_cities: int = 40
    foreign_cities: int = 60
    tx_per_day: float = 1.6
    travel_rate: float = 0.25
    new_card_share: float = 0.1
    compromised_card_days: float = 14.0
    compromised_card_share: float = 1 / 3
    breach_days: tuple[float, float] = (7.0, 21.0)
    breach_share: float = 0.9
    followup_share: float = 0.3

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0 < self.days <= 3660:
            raise ValueError("days must be in (0, 3660]")
        if self.cards < 1:
            raise ValueError("cards must be at least 1")
        if self.merchants is not None and self.merchants < 20:
            raise ValueError("merchants must be at least 20")
        if not 0 <= self.fraud_rate < 0.5:
            raise ValueError("fraud_rate must be in [0, 0.5)")
        if not self.home_countries:
            raise ValueError("home_countries must not be empty")
        for name in ("travel_rate", "new_card_share", "compromised_card_share"):
            _check_fraction(name, getattr(self, name))
        for name in ("breach_share", "followup_share"):
            _check_fraction(name, getattr(self, name))
        if self.tx_per_day <= 0:
            raise ValueError("tx_per_day must be positive")
        _check_phases(self.phases)

    @property
    def merchant_count(self) -> int:
        """Merchants in the population (by default one per five cards, at least 60)."""
        return self.merchants if self.merchants is not None else max(60, self.cards // 5)

    def campaign_onset_fraction(self) -> float | None:
        """Start of the first phase that brings a scenario no earlier phase had."""
        seen: set[str] = set()
        for index, phase in enumerate(self.phases):
            active = {name for name, weight in phase.mix.items() if weight > 0}
            if index > 0 and active - seen:
                return phase.start
            seen |= active
        return None


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]")


def _check_phases(phases: tuple[Phase, ...]) -> None:
    if not phases or phases[0].start != 0.0:
        raise ValueError("the first phase must start at 0.0")
    starts = [phase.start for phase in phases]
    if starts != sorted(set(starts)) or starts[-1] >= 1.0:
        raise ValueError("phase starts must increase and stay below 1.0")
    for phase in phases:
        unknown = sorted(set(phase.mix) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"unknown scenario(s): {', '.join(unknown)}")
        if any(weight < 0 for weight in phase.mix.values()):
            raise ValueError("scenario weights must not be negative")
        if phase.amount_factor <= 0:
            raise ValueError("amount_factor must be positive")
        if phase.fraud_rate is not None and not 0 <= phase.fraud_rate < 0.5:
            raise ValueError("a phase's fraud_rate must be in [0, 0.5)")
