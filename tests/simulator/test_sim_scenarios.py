"""Each fraud scenario leaves its signature in the records; genuine spending looks genuine."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from simulator.generate import Stream
from simulator.records import Record


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


@dataclass
class Card:
    amounts: list[float] = field(default_factory=list)
    places: list[tuple[float, float]] = field(default_factory=list)
    merchants: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    countries: list[str] = field(default_factory=list)

    def home(self) -> tuple[float, float] | None:
        if len(self.places) < 3:
            return None
        return statistics.median(p[0] for p in self.places), statistics.median(
            p[1] for p in self.places
        )


@dataclass
class View:
    """The medium stream, indexed the way the assertions need it."""

    legit: dict[str, Card]
    fraud: dict[str, list[dict[str, Any]]]
    times: dict[str, datetime]
    seen_before: dict[str, bool]  # fraud tx id -> card had used that merchant before
    onset: datetime


@pytest.fixture(scope="module")
def view(medium_stream: Stream, medium_records: list[Record]) -> View:
    legit: dict[str, Card] = defaultdict(Card)
    fraud: dict[str, list[dict[str, Any]]] = defaultdict(list)
    times: dict[str, datetime] = {}
    used: dict[str, set[str]] = defaultdict(set)
    seen_before: dict[str, bool] = {}
    for record in medium_records:
        if record.kind != "transaction" or record.truth is None:
            continue
        data, card = record.data, record.data["card_id"]
        times[record.transaction_id] = record.event_time
        if record.truth.scenario is None:
            entry = legit[card]
            entry.amounts.append(data["amount"])
            entry.merchants.add(data["merchant_id"])
            entry.countries.append(data["country"])
            if "lat" in data:
                entry.places.append((data["lat"], data["lon"]))
            if "device_id" in data:
                entry.devices.add(data["device_id"])
        else:
            fraud[record.truth.scenario].append(data)
            seen_before[record.transaction_id] = data["merchant_id"] in used[card]
        used[card].add(data["merchant_id"])
    onset = medium_stream.summary.campaign_onset
    assert onset is not None
    return View(legit, fraud, times, seen_before, onset)


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags)


def _by_card(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row["card_id"]].append(row)
    return out


def test_every_scenario_occurs(view: View) -> None:
    for name in (
        "card_testing",
        "stolen_card",
        "account_takeover",
        "compromised_merchant",
        "compromised_card",
    ):
        assert len(view.fraud[name]) > 50, name


def test_card_testing_is_tiny_online_payments_at_new_merchants(view: View) -> None:
    rows = view.fraud["card_testing"]
    assert _share([r["amount"] < 5 for r in rows]) > 0.8
    assert _share([r["channel"] == "ecom" for r in rows]) == 1.0
    assert _share([not view.seen_before[r["transaction_id"]] for r in rows]) > 0.7
    gaps = []
    for burst in _by_card(rows).values():
        stamps = sorted(view.times[r["transaction_id"]] for r in burst)
        gaps += [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert statistics.median(gaps) < 300  # seconds apart, where people take hours


def test_stolen_cards_spend_big_far_from_home(view: View) -> None:
    rows = view.fraud["stolen_card"]
    assert _share([r["channel"] in ("pos", "atm") for r in rows]) == 1.0
    far, ratios = [], []
    for card, spree in _by_card(rows).items():
        home = view.legit[card].home()
        if home is None:
            continue
        far += [_km(*home, r["lat"], r["lon"]) > 1000 for r in spree]
        usual = statistics.median(view.legit[card].amounts)
        ratios += [r["amount"] / usual for r in spree]
    assert _share(far) > 0.9
    assert statistics.median(ratios) > 3


def test_stolen_cards_travel_impossibly(view: View, medium_records: list[Record]) -> None:
    """A stolen card's first far purchase is hours after a purchase at home."""
    stolen_cards = set(_by_card(view.fraud["stolen_card"]))
    last: dict[str, tuple[datetime, float, float]] = {}
    speeds = []
    for record in medium_records:
        data = record.data
        if record.kind != "transaction" or "lat" not in data or data["card_id"] not in stolen_cards:
            continue
        card, here = data["card_id"], (record.event_time, data["lat"], data["lon"])
        if card in last and record.truth and record.truth.scenario == "stolen_card":
            then, lat, lon = last[card]
            km = _km(lat, lon, here[1], here[2])
            if km > 1000:
                hours = max((here[0] - then).total_seconds() / 3600, 1 / 60)
                speeds.append(km / hours)
        last[card] = here
    assert speeds
    assert statistics.median(speeds) > 100  # faster than any trip that starts with a purchase


def test_account_takeover_is_a_new_device_abroad_spending_more(view: View) -> None:
    rows = view.fraud["account_takeover"]
    assert _share([r["channel"] == "ecom" for r in rows]) == 1.0
    assert _share([r["device_id"] not in view.legit[r["card_id"]].devices for r in rows]) == 1.0
    home = {card: statistics.mode(c.countries) for card, c in view.legit.items() if c.countries}
    abroad = [r["country"] != home[r["card_id"]] for r in rows if r["card_id"] in home]
    assert _share(abroad) > 0.7
    rising = []
    for attack in _by_card(rows).values():
        ordered = sorted(attack, key=lambda r: view.times[r["transaction_id"]])
        rising.append(ordered[-1]["amount"] > ordered[0]["amount"])
    assert _share(rising) > 0.8


def test_breached_merchants_turn_their_traffic_into_fraud(
    view: View, medium_records: list[Record]
) -> None:
    rows = view.fraud["compromised_merchant"]
    assert min(view.times[r["transaction_id"]] for r in rows) >= view.onset
    breached = defaultdict(list)
    for row in rows:
        if row["channel"] != "ecom":
            breached[row["merchant_id"]].append(view.times[row["transaction_id"]])
    assert breached
    fraud_share = []
    for merchant, stamps in breached.items():
        start, end = min(stamps), max(stamps)
        during = [
            r
            for r in medium_records
            if r.kind == "transaction"
            and r.data["merchant_id"] == merchant
            and start <= r.event_time <= end
        ]
        fraud_share.append(_share([bool(r.truth and r.truth.is_fraud) for r in during]))
    assert statistics.median(fraud_share) > 0.7


def test_cards_seen_at_a_breached_merchant_later_suffer_fraud_elsewhere(view: View) -> None:
    rows = view.fraud["compromised_merchant"]
    visits = {r["card_id"]: view.times[r["transaction_id"]] for r in rows if r["channel"] != "ecom"}
    later = [r for r in rows if r["channel"] == "ecom"]
    assert later, "no follow-up fraud"
    for row in later:
        assert row["card_id"] in visits
        assert view.times[row["transaction_id"]] > visits[row["card_id"]] + timedelta(hours=12)


def test_compromised_cards_pay_inflated_amounts_at_usual_places_for_two_weeks(view: View) -> None:
    rows = view.fraud["compromised_card"]
    ratios, spans = [], []
    for card, hits in _by_card(rows).items():
        usual = statistics.median(view.legit[card].amounts)
        ratios += [r["amount"] / usual for r in hits]
        stamps = [view.times[r["transaction_id"]] for r in hits]
        spans.append(max(stamps) - min(stamps))
    assert statistics.median(ratios) > 2.5
    assert max(spans) <= timedelta(days=14)
    assert _share([view.seen_before[r["transaction_id"]] for r in rows]) > 0.4


def test_genuine_spending_is_mostly_local_with_some_travel(view: View) -> None:
    local, far = [], []
    for card in view.legit.values():
        home = card.home()
        if home is None:
            continue
        distances = [_km(*home, lat, lon) for lat, lon in card.places]
        local += [d < 150 for d in distances]
        far += [d > 500 for d in distances]
    assert _share(local) > 0.85
    assert 0.0 < _share(far) < 0.05


def test_genuine_spending_follows_a_daily_rhythm(medium_records: list[Record]) -> None:
    hours = [0] * 24
    for record in medium_records:
        if record.kind == "transaction" and record.truth and not record.truth.is_fraud:
            hours[record.event_time.hour] += 1
    night, midday = sum(hours[1:5]), sum(hours[10:14])  # UTC ≈ local time in Europe
    assert midday > 4 * night


def test_genuine_customers_return_to_their_merchants(view: View) -> None:
    repeat = [len(c.merchants) / len(c.amounts) for c in view.legit.values() if len(c.amounts) > 20]
    assert statistics.median(repeat) < 0.5
