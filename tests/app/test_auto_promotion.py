"""Automatic promotion, wired: the learner applies the policy and records what it did."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from river import base

from app.main import create_app
from models import zoo
from tests.app.conftest import ADMIN, LABELER, SCORER, label, settings_for, tx


class Indifferent(base.Classifier):
    """A model that has learned nothing: every transaction gets 0.5 (AP = the fraud rate)."""

    def learn_one(self, x: dict[str, Any], y: Any, **kwargs: Any) -> None:
        return None

    def predict_proba_one(self, x: dict[str, Any], **kwargs: Any) -> dict[bool, float]:
        return {False: 0.5, True: 0.5}


@pytest.fixture
def indifferent() -> Iterator[str]:
    """Registered for this test only (the zoo is global; other tests never see it)."""
    zoo.ZOO["indifferent"] = zoo.ModelSpec("indifferent", Indifferent, "test model", "1")
    yield "indifferent"
    del zoo.ZOO["indifferent"]


def _scoring(auto: bool) -> dict[str, Any]:
    return {
        "champion": "indifferent",
        "challengers": ["logreg"],
        "auto_promote": auto,
        "promotion_min_labels": 60,
        "promotion_margin": 0.05,
        "promotion_confidence": 0.9,
        "promotion_every_labels": 30,
    }


def _feed(client: TestClient, rounds: int, size: int = 30) -> None:
    """Rounds of transactions whose fraud is plain from the amount, each followed by its
    labels, so that later rounds are scored by a logreg that has learned the rule."""
    rng = random.Random(11)
    for r in range(rounds):
        bodies = []
        for i in range(size):
            fraud = rng.random() < 0.3
            amount = round(rng.uniform(700, 900) if fraud else rng.uniform(2, 300), 2)
            bodies.append(
                tx(card_id=f"card_{(r + i) % 13}", merchant_id=f"m_{i % 7}", amount=amount)
            )
        for body in bodies:
            assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 200
        for body in bodies:
            sent = label(body["transaction_id"], body["amount"] > 500)
            assert client.post("/v1/labels", json=sent, headers=LABELER).status_code == 202


def _run(database: str, redis_url: str, auto: bool) -> dict[str, Any]:
    """Feed the rounds; what the service then says about its models and promotions."""
    settings = settings_for(database, redis_url, scoring=_scoring(auto=auto))
    with TestClient(create_app(settings)) as client:
        _feed(client, rounds=7)
        listing = client.get("/v1/models", headers=SCORER).json()
        return {
            "roles": {m["name"]: m["role"] for m in listing["models"]},
            "policy": listing["policy"],
            "history": client.get("/v1/models/promotions", headers=ADMIN).json()["promotions"],
            "metrics": client.get("/metrics").text.replace(" ", ""),
        }


def test_the_policy_promotes_a_clearly_better_challenger_and_says_why(
    fresh_database: str, api_redis_url: str, indifferent: str
) -> None:
    seen = _run(fresh_database, api_redis_url, auto=True)
    assert seen["roles"] == {"logreg": "champion", "indifferent": "challenger"}
    assert seen["policy"]["auto_promote"] is True and seen["policy"]["last_decision"] is not None
    history = seen["history"]
    assert [(p["from_model"], p["to_model"], p["automatic"]) for p in history] == [
        ("indifferent", "logreg", True)
    ]
    assert history[0]["reason"].startswith("promote logreg: AP ")
    assert 'from_model="indifferent",to_model="logreg"' in seen["metrics"]


def test_with_the_policy_off_nothing_is_promoted(
    fresh_database: str, api_redis_url: str, indifferent: str
) -> None:
    seen = _run(fresh_database, api_redis_url, auto=False)
    assert seen["roles"] == {"indifferent": "champion", "logreg": "challenger"}
    assert seen["policy"]["auto_promote"] is False and seen["policy"]["last_decision"] is None
    assert seen["history"] == []
