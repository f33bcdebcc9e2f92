"""The demo's decision layer: review/decline budgets, one rule and one list entry, and the
figures a fraud team reads first (who decided, what share went to review, against budget).

The rule and the list entry are chosen from the generated stream before it is replayed, as a
fraud team would from its own history: a review rule for the rarest e-commerce amounts (the
top 0.2 %), and a block-list entry for the card with the most fraud (a card reported stolen).
"""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from simulator.records import Record

REVIEW_BUDGET = 0.02
DECLINE_BUDGET = 0.005
RULE_ID = "big-ecom"
WARMING_UP = "model_warming_up"


def budget_env() -> dict[str, str]:
    """The service settings that turn the budgets on."""
    return {
        "RIVERGUARD_DECISIONS__REVIEW_BUDGET": str(REVIEW_BUDGET),
        "RIVERGUARD_DECISIONS__DECLINE_BUDGET": str(DECLINE_BUDGET),
    }


@dataclass(frozen=True)
class Setup:
    rule_expression: str
    blocked_card: str


def choose(records: Sequence[Record]) -> Setup:
    """The rule's amount (the top 0.2 % of e-commerce amounts) and the card to block."""
    amounts, frauds = [], collections.Counter[str]()
    for record in records:
        if record.kind != "transaction":
            continue
        body = record.data
        if body.get("channel") == "ecom":
            amounts.append(float(body["amount"]))
        if record.truth is not None and record.truth.is_fraud:
            frauds[body["card_id"]] += 1
    amounts.sort()
    limit = amounts[int(len(amounts) * 0.998)] if amounts else 5000.0
    card = frauds.most_common(1)[0][0] if frauds else "card_0"
    return Setup(f'amount > {limit:.2f} && channel == "ecom"', card)


async def install(url: str, key: str, setup: Setup) -> None:
    """Create the rule and the list entry through the admin API (as an operator would)."""
    headers = {"X-API-Key": key}
    rule = {
        "id": RULE_ID,
        "name": "the rarest e-commerce amounts go to review",
        "expression": setup.rule_expression,
        "action": "review",
        "priority": 10,
        "enabled": True,
    }
    entry = {
        "entity": "card",
        "value": setup.blocked_card,
        "kind": "block",
        "reason": "card reported stolen (demo)",
    }
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        for path, body in (("/v1/rules", rule), ("/v1/lists", entry)):
            response = await client.post(path, json=body)
            if response.status_code not in (201, 409):
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")


def layer_of(decided: str | None, reasons: str | None) -> str:
    """Who decided a stored transaction, from its columns (as the service rebuilds it)."""
    if decided is not None:
        return "rule" if decided.startswith("rule:") else "list"
    if reasons and any(r.get("code") == WARMING_UP for r in json.loads(reasons)):
        return "warmup"
    return "model"


def summary(rows: Sequence[Any], setup: Setup) -> dict[str, Any]:
    """Decisions by layer, and the realised rates (every layer) once the model decides."""
    ordered = sorted(rows, key=lambda r: r["event_time"])
    layers = [layer_of(r["decided"], r["reasons"]) for r in ordered]
    first = next((i for i, layer in enumerate(layers) if layer == "model"), None)
    rates: dict[str, str] = {"review": "warm-up not over", "decline": "warm-up not over"}
    if first is not None:
        after = collections.Counter(r["decision"] for r in ordered[first:])
        n = len(ordered) - first
        rates = {d: f"{after[d] / n:.2%} of {n:,}" for d in rates}
    counts = collections.Counter(layers)
    return {
        "decided by": ", ".join(f"{layer} {counts[layer]:,}" for layer in sorted(counts)),
        f"review rate (budget {REVIEW_BUDGET:.1%})": rates["review"],
        f"decline rate (budget {DECLINE_BUDGET:.1%})": rates["decline"],
        f"rule {RULE_ID} decided": counts["rule"],
        "block-listed card decided": counts["list"],
    }
