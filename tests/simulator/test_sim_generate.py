"""The generated stream: determinism, wire validity, ordering, fraud rate and drift."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from features import schema
from simulator.config import LabelConfig, Phase, SimConfig, default_phases
from simulator.generate import Stream, generate, simulate
from simulator.jsonl import write_jsonl
from simulator.records import Record

LONG_AGO_NOW = datetime(2030, 1, 1, tzinfo=UTC)
DIGIT_RUN = re.compile(r"\d{13,}")


def _bytes(config: SimConfig) -> bytes:
    buffer = io.StringIO()
    write_jsonl(generate(config), buffer)
    return buffer.getvalue().encode()


def test_same_seed_gives_byte_identical_output() -> None:
    config = SimConfig(cards=120, merchants=40, days=6, seed=42)
    first, second = _bytes(config), _bytes(SimConfig(cards=120, merchants=40, days=6, seed=42))
    assert first == second
    assert first != _bytes(SimConfig(cards=120, merchants=40, days=6, seed=43))


def test_a_stream_can_be_iterated_twice_with_the_same_records(small_stream: Stream) -> None:
    first = [r.to_json() for r in small_stream][:500]
    second = [r.to_json() for r in small_stream][:500]
    assert first == second


def test_every_record_validates_against_the_wire_schema(small_records: list[Record]) -> None:
    now = LONG_AGO_NOW
    for record in small_records:
        raw = record.payload()
        if record.kind == "transaction":
            tx = schema.decode_transaction(raw, now=now)
            assert tx.transaction_id == record.transaction_id
            assert record.truth is not None
        else:
            label = schema.decode_label(raw, now=now)
            assert label.source in ("chargeback", "review", "customer", "simulator")


def test_lines_have_the_documented_shape(small_records: list[Record]) -> None:
    amount = re.compile(r'"amount":\d+(\.\d{1,2})?[,}]')
    for record in small_records[:3000]:
        line = record.to_json()
        parsed = json.loads(line)
        assert parsed["kind"] in ("transaction", "label")
        assert parsed["at"].endswith("Z")
        if record.kind == "transaction":
            assert amount.search(line), line
            assert parsed["data"]["timestamp"] == parsed["at"]
            assert set(parsed["truth"]) == {"is_fraud", "scenario"}
        else:
            assert parsed["data"]["labeled_at"] == parsed["at"]
            assert "truth" not in parsed


def test_records_are_sorted_by_event_time(small_records: list[Record]) -> None:
    times = [record.event_time for record in small_records]
    assert times == sorted(times)
    tx_ids = [r.transaction_id for r in small_records if r.kind == "transaction"]
    assert len(tx_ids) == len(set(tx_ids))


def test_no_label_precedes_its_transaction(small_records: list[Record]) -> None:
    seen: dict[str, datetime] = {}
    labels = 0
    for record in small_records:
        if record.kind == "transaction":
            seen[record.transaction_id] = record.event_time
        else:
            labels += 1
            assert record.transaction_id in seen, "label before its transaction"
            assert record.event_time > seen[record.transaction_id]
    assert labels > 0


def test_no_id_looks_like_a_card_number(small_records: list[Record]) -> None:
    for record in small_records:
        for key in ("transaction_id", "card_id", "merchant_id", "device_id", "customer_id"):
            value = record.data.get(key)
            if value is not None:
                assert not DIGIT_RUN.search(value), value
                assert not schema.looks_like_pan(value)


def test_summary_matches_the_records(
    small_stream: Stream, small_records: list[Record], small_config: SimConfig
) -> None:
    summary = small_stream.summary
    txs = [r for r in small_records if r.kind == "transaction"]
    assert summary.transactions == len(txs)
    assert summary.frauds == sum(1 for r in txs if r.truth and r.truth.is_fraud)
    assert sum(summary.labels.values()) == len(small_records) - len(txs)
    assert len(small_stream) == len(small_records)
    end = small_config.start + timedelta(days=small_config.days)
    assert summary.end == end
    assert all(r.event_time <= end for r in small_records)
    assert summary.dropped_labels > 0  # labels due after the end are dropped, not kept
    assert json.loads(json.dumps(summary.to_dict()))["transactions"] == len(txs)


def test_start_option_moves_the_stream() -> None:
    start = datetime(2025, 6, 1, 12, tzinfo=UTC)
    config = SimConfig(cards=50, merchants=40, days=3, seed=1, start=start)
    records = list(generate(config))
    assert min(r.event_time for r in records) >= start
    assert max(r.event_time for r in records) <= start + timedelta(days=3)


@pytest.mark.parametrize("rate", [0.01, 0.03])
def test_realised_fraud_rate_matches_the_configuration(rate: float) -> None:
    summary = simulate(SimConfig(cards=3000, days=20, seed=3, fraud_rate=rate)).summary
    assert summary.fraud_rate == pytest.approx(rate, rel=0.2)
    assert all(count > 0 for count in summary.by_scenario.values())


def test_zero_fraud_rate_gives_no_fraud() -> None:
    stream = simulate(SimConfig(cards=100, merchants=40, days=5, fraud_rate=0.0))
    assert stream.summary.frauds == 0
    assert stream.summary.positive_labels <= 5  # only the rare false chargebacks


def test_new_campaign_starts_at_the_onset(
    medium_stream: Stream, medium_records: list[Record]
) -> None:
    summary = medium_stream.summary
    onset = summary.start + (summary.end - summary.start) / 2
    assert summary.campaign_onset == onset
    campaign = [
        r.event_time
        for r in medium_records
        if r.truth is not None and r.truth.scenario == "compromised_merchant"
    ]
    assert campaign, "the campaign never started"
    assert min(campaign) >= onset
    assert summary.first_seen["compromised_merchant"] == min(campaign)
    before = [r for r in medium_records if r.truth and r.truth.is_fraud and r.event_time < onset]
    assert {r.truth.scenario for r in before if r.truth} == {
        "card_testing",
        "stolen_card",
        "account_takeover",
        "compromised_card",
    }


def test_onset_and_mix_are_configurable() -> None:
    phases = (Phase(0.0, {"card_testing": 1.0}), Phase(0.3, {"stolen_card": 1.0}))
    config = SimConfig(cards=800, days=10, seed=2, phases=phases, fraud_rate=0.02)
    stream = simulate(config)
    assert config.campaign_onset_fraction() == 0.3
    assert stream.summary.campaign_onset == config.start + timedelta(days=3)
    onset = stream.summary.campaign_onset
    for record in stream:
        if record.truth and record.truth.scenario == "stolen_card":
            assert record.event_time >= onset
    assert default_phases(None)[0].mix.get("compromised_merchant") is None
    assert SimConfig(phases=default_phases(None)).campaign_onset_fraction() is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"days": 0},
        {"cards": 0},
        {"fraud_rate": 0.7},
        {"merchants": 3},
        {"start": datetime(2026, 1, 1)},
        {"phases": (Phase(0.2, {"card_testing": 1.0}),)},
        {"phases": (Phase(0.0, {"bank_robbery": 1.0}),)},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_label_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 1"):
        LabelConfig(review_share=0.8, customer_share=0.5)
    with pytest.raises(ValueError):
        LabelConfig(unreported_rate=1.5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cards": 1, "days": 3},
        {"cards": 5, "days": 0.5, "merchants": 20},
        {"cards": 3, "days": 30, "fraud_rate": 0.3},
        {"cards": 40, "days": 5, "home_countries": ("US",), "foreign_cities": 0},
    ],
)
def test_tiny_and_odd_populations_still_make_valid_streams(kwargs: dict[str, object]) -> None:
    config = SimConfig(**kwargs)  # type: ignore[arg-type]
    for record in generate(config):
        decode = schema.decode_transaction if record.kind == "transaction" else schema.decode_label
        decode(record.payload(), now=LONG_AGO_NOW)
