"""The fraud team's operations on the split layout, on real processes: one `riverguard learner`
and two scorers (A and B) on one database and one Redis.

A rule (a shadow rule too) or a list entry changed through one scorer decides on the other
after the refresh interval; a case opened by a transaction scored on A is claimed once across
both scorers, and a review verdict on A with a close of its case on B labels the transaction
once; a label posted to B is learned by the learner and shown by both scorers' /v1/models once
they load its bundle; with four-eyes on (the scorers restarted with it, as a rolling
configuration change), a proposal made through A is approved on B by another key — never by
its proposer, and once when two approve at the same moment — and then holds on both.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from tests.e2e.test_learner_failover import _wait_settled
from tests.service_process import RIVERGUARD, ServiceProcess

KEYS = ",".join((
    "alice-key=score|label|review|admin|approve@alice",
    "bob-key=score|label|review|admin|approve@bob",
    "carol-key=approve@carol",
))  # fmt: skip
ALICE, BOB, CAROL = "alice-key", "bob-key", "carol-key"
REFRESH_SECONDS = 1.0  # RIVERGUARD_DECISIONS__REFRESH_SECONDS (the documented default)
DEADLINE = 15.0  # a change made on one scorer decides on the other well within this
NOW = datetime.now(UTC)
_ids = itertools.count()


@dataclass
class Split:
    """A learner and scorers A and B; :meth:`with_four_eyes` rolls the scorers to a setting."""

    learner: ServiceProcess
    a: ServiceProcess
    b: ServiceProcess
    env: dict[str, str]
    logs: Path
    database: str
    four_eyes: bool = False

    @property
    def scorers(self) -> tuple[ServiceProcess, ServiceProcess]:
        return self.a, self.b

    def with_four_eyes(self, on: bool) -> Split:
        """Restart both scorers with four-eyes ``on`` unless they run so already (a rolling
        configuration change: the learner, the database and Redis stay)."""
        if on != self.four_eyes:
            self.a.stop()
            self.b.stop()
            env = {**self.env, "RIVERGUARD_DECISIONS__FOUR_EYES": str(on).lower()}
            self.a, self.b = _start([_scorer(env), _scorer(env)], self.logs, ["a", "b"])
            self.four_eyes = on
        return self

    def stop(self) -> None:
        for service in (self.b, self.a, self.learner):
            service.stop()


def _scorer(env: dict[str, str]) -> ServiceProcess:
    return ServiceProcess({**env, "RIVERGUARD_ROLE": "scorer"})


def _start(services: list[ServiceProcess], logs: Path, names: list[str]) -> list[ServiceProcess]:
    """Start ``services`` together, as a deployment does, and wait until each is ready."""
    try:
        for service, name in zip(services, names, strict=True):
            service.launch(logs / f"{name}.log")
        for service in services:
            service.wait_ready(timeout=120)
    except BaseException:
        for service in services:
            service.stop()
        raise
    return services


def _call(
    service: ServiceProcess, method: str, path: str, key: str = ALICE, body: Any = None
) -> httpx.Response:
    return httpx.request(
        method, f"{service.url}{path}", json=body, headers={"X-API-Key": key}, timeout=30
    )


def _poll(what: Callable[[], bool], why: str, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.2)


def _tx(card: str = "card_ops", merchant: str = "m_ops", **extra: Any) -> dict[str, Any]:
    i = next(_ids)
    return {
        "transaction_id": f"ops-{i}", "card_id": card, "merchant_id": merchant,
        "amount": 20 + i % 50, "currency": "EUR", "channel": "ecom", "country": "FR",
        "timestamp": (NOW - timedelta(hours=30) + timedelta(seconds=i)).isoformat(), **extra,
    }  # fmt: skip


def _score(service: ServiceProcess, **fields: Any) -> dict[str, Any]:
    answer = _call(service, "POST", "/v1/transactions", body=_tx(**fields))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _decides(service: ServiceProcess, decision: str, by: str, **fields: Any) -> Callable[[], bool]:
    """A fresh transaction scored on ``service`` gets ``decision`` from layer ``by``."""

    def check() -> bool:
        answer = _score(service, **fields)
        return bool(answer["decision"] == decision and answer["decided_by"] == by)

    return check


def _at_once(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """The answers of ``calls``, each made on its own thread, all released at one moment."""
    start = threading.Barrier(len(calls))
    answers: list[httpx.Response | None] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait(timeout=30)
        answers[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(a is not None for a in answers), "a call never answered"
    return [a for a in answers if a is not None]


def _database(admin_url: str) -> str:
    async def create() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return admin_url.rsplit("/", 1)[0] + f"/{name}"

    return asyncio.run(create())


def _drop(admin_url: str, database: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE "{database.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="module")
def deployment(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Split]:
    """One learner and scorers A and B on a new database and Redis database 12, for the
    module (each test works on cards, merchants and rules of its own)."""
    redis_at = redis_url.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(redis_at).flushdb()
    database = _database(database_url)
    env = {
        "RIVERGUARD_API_KEYS": KEYS, "RIVERGUARD_REDIS_URL": redis_at,
        "RIVERGUARD_DATABASE_URL": database,
        "RIVERGUARD_SCORING__BUNDLE_EVERY_SECONDS": "1", "RIVERGUARD_SCORING__LEASE_SECONDS": "3",
        "RIVERGUARD_DECISIONS__REFRESH_SECONDS": str(REFRESH_SECONDS),
    }  # fmt: skip
    logs = tmp_path_factory.mktemp("split")
    try:
        # migrations serialise on their lock: every process may start at once
        learner, a, b = _start(
            [ServiceProcess(env, command=(str(RIVERGUARD), "learner")), _scorer(env), _scorer(env)],
            logs,
            ["learner", "a", "b"],
        )
        split = Split(learner, a, b, env, logs, database)
        try:
            yield split
        finally:
            split.stop()
    finally:
        redis.Redis.from_url(redis_at).flushdb()
        _drop(database_url, database)


@pytest.fixture
def split(deployment: Split) -> Split:
    return deployment.with_four_eyes(False)


@pytest.fixture
def four_eyes(deployment: Split) -> Split:
    return deployment.with_four_eyes(True)


RULE = {"name": "ops rule", "expression": 'merchant_id == "m_rule"', "action": "decline",
        "reason_code": "ops_rule"}  # fmt: skip


def test_a_rule_changed_through_one_scorer_decides_on_the_other(split: Split) -> None:
    a, b = split.scorers
    on = {"card": "card_rule", "merchant": "m_rule"}
    assert _score(b, **on)["decided_by"] == "warmup"  # nothing decides it yet

    created = _call(a, "POST", "/v1/rules", body={"id": "ops-rule", **RULE})
    assert created.status_code == 201, created.text
    here = _score(a, **on)  # the process that made the change has it at once
    assert here["decision"] == "decline" and here["rule_id"] == "ops-rule", here
    _poll(_decides(b, "decline", "rule", **on), "B never applied the rule created on A")

    changed = _call(b, "PUT", "/v1/rules/ops-rule", BOB, {**RULE, "action": "review"})
    assert changed.status_code == 200 and changed.json()["version"] == 2, changed.text
    assert _score(b, **on)["decision"] == "review"
    _poll(_decides(a, "review", "rule", **on), "A kept the rule as it was before B changed it")

    off = _call(b, "PUT", "/v1/rules/ops-rule", BOB, {**RULE, "enabled": False})
    assert off.status_code == 200 and off.json()["version"] == 3, off.text
    assert _score(b, **on)["decided_by"] == "warmup"
    _poll(_decides(a, "approve", "warmup", **on), "A kept a rule B disabled")

    # the same id created through both scorers at one moment: one rule, one refusal
    twin = {"id": "ops-twin", **RULE, "enabled": False}
    answers = _at_once(*(partial(_call, s, "POST", "/v1/rules", ALICE, twin) for s in (a, b)))
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]

    for service in (a, b, split.learner):
        history = _call(service, "GET", "/v1/rules/ops-rule/history").json()["history"]
        assert [(h["version"], h["changed_by"]) for h in history] == [
            (1, "alice"), (2, "bob"), (3, "bob")
        ]  # fmt: skip


def test_a_card_listed_through_one_scorer_is_declined_on_the_other(split: Split) -> None:
    a, b = split.scorers
    on = {"card": "card_listed", "merchant": "m_list"}
    block = {"entity": "card", "value": "card_listed", "kind": "block", "reason": "stolen"}
    assert _score(b, **on)["decided_by"] == "warmup"

    added = _call(a, "POST", "/v1/lists", body=block)
    assert added.status_code == 201 and added.json()["created_by"] == "alice", added.text
    assert (_score(a, **on)["decision"], _score(a, **on)["decided_by"]) == ("decline", "list")
    _poll(_decides(b, "decline", "list", **on), "B never declined the card A block-listed")
    assert _score(b, card="card_other", merchant="m_list")["decided_by"] == "warmup"

    removed = _call(b, "DELETE", "/v1/lists/card/block/card_listed", BOB)
    assert removed.status_code == 200 and removed.json()["removed_by"] == "bob", removed.text
    assert _score(b, **on)["decision"] == "approve"
    _poll(_decides(a, "approve", "warmup", **on), "A kept declining the card B unlisted")
    again = _call(a, "DELETE", "/v1/lists/card/block/card_listed")
    assert again.status_code == 404  # removed once, whichever process is asked

    # the same entry added through both scorers at one moment: one entry, one refusal
    watch = {**block, "kind": "watch", "value": "card_twin"}
    answers = _at_once(*(partial(_call, s, "POST", "/v1/lists", ALICE, watch) for s in (a, b)))
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    entries = _call(b, "GET", "/v1/lists?entity=card&prefix=card_twin").json()["entries"]
    assert len(entries) == 1


def _shadow_hits(service: ServiceProcess, rule_id: str) -> float:
    """This process's ``riverguard_rule_shadow_hits_total`` of ``rule_id`` (0 before any)."""
    series = f'riverguard_rule_shadow_hits_total{{rule="{rule_id}"}} '
    for line in httpx.get(f"{service.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(series):
            return float(line.split()[-1])
    return 0.0


def test_a_shadow_rule_saved_on_one_scorer_counts_hits_of_both_and_is_enabled_on_the_other(
    split: Split,
) -> None:
    a, b = split.scorers
    on = {"card": "card_shadow", "merchant": "m_shadow"}
    shadow = {"id": "ops-shadow", "expression": 'merchant_id == "m_shadow"', "action": "decline",
              "shadow": True}  # fmt: skip
    saved = _call(a, "POST", "/v1/rules", body=shadow)
    assert saved.status_code == 201 and saved.json()["shadow"] is True, saved.text
    for _ in range(3):
        assert _score(a, **on)["decided_by"] == "warmup"  # runs here at once, decides nothing
    assert _shadow_hits(a, "ops-shadow") == 3

    def hit_on_b() -> bool:
        assert _score(b, **on)["decided_by"] == "warmup"
        return _shadow_hits(b, "ops-shadow") > 0

    _poll(hit_on_b, "B never ran the shadow rule saved on A")
    window = {"since": (NOW - timedelta(days=2)).isoformat(), "until": NOW.isoformat()}
    hits = _shadow_hits(a, "ops-shadow") + _shadow_hits(b, "ops-shadow")
    for service in (a, b):  # each process's figures count what both stored
        figures = httpx.get(f"{service.url}/v1/rules/ops-shadow/shadow", params=window,
                            headers={"X-API-Key": ALICE}, timeout=30).json()  # fmt: skip
        assert figures["hits"] == hits, figures

    enabled = _call(b, "POST", "/v1/rules/ops-shadow/enable", BOB)
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["enabled"], enabled.json()["shadow"]) == (True, False)
    assert _score(b, **on)["decision"] == "decline"
    _poll(_decides(a, "decline", "rule", **on), "A kept the rule B enabled in shadow")


def _open_case(split: Split, card: str) -> int:
    """A transaction on ``card`` scored on A and sent to review: the id of its case, as B
    sees it."""
    answer = _score(split.a, card=card, merchant="m_review")
    assert (answer["decision"], answer["rule_id"]) == ("review", "ops-review")
    found = _call(split.b, "GET", f"/v1/cases?card_id={card}", BOB).json()["cases"]
    assert [(c["status"], c["alerts"], c["assignee"]) for c in found] == [("open", 1, None)]
    detail = _call(split.b, "GET", f"/v1/cases/{found[0]['id']}", BOB).json()
    assert [t["transaction_id"] for t in detail["transactions"]] == [answer["transaction_id"]]
    return int(found[0]["id"])


def test_a_case_opened_on_one_scorer_is_claimed_once_across_both(split: Split) -> None:
    a, b = split.scorers
    review = {"id": "ops-review", "expression": 'merchant_id == "m_review"', "action": "review"}
    assert _call(a, "POST", "/v1/rules", body=review).status_code == 201
    case = _open_case(split, "card_case")

    claimed = _call(a, "POST", f"/v1/cases/{case}/claim", ALICE)
    assert claimed.status_code == 200 and claimed.json()["assignee"] == "alice", claimed.text
    for action in ("claim", "release"):
        refused = _call(b, "POST", f"/v1/cases/{case}/{action}", BOB)
        assert refused.status_code == 409 and refused.json()["holder"] == "alice", refused.text
    closing = _call(b, "POST", f"/v1/cases/{case}/close", BOB, {"outcome": "inconclusive"})
    assert closing.status_code == 409
    seen = _call(b, "GET", f"/v1/cases/{case}", BOB).json()
    assert (seen["status"], seen["assignee"]) == ("investigating", "alice")
    # the claim is the analyst's, not the process's: alice closes it through B
    closed = _call(b, "POST", f"/v1/cases/{case}/close", ALICE, {"outcome": "inconclusive"})
    assert closed.status_code == 200 and closed.json()["case"]["status"] == "closed", closed.text

    # two analysts claiming at the same moment through two processes: one holds the case
    for n in range(5):
        race = _open_case(split, f"card_race_{n}")
        path = f"/v1/cases/{race}/claim"
        answers = _at_once(
            partial(_call, a, "POST", path, ALICE), partial(_call, b, "POST", path, BOB)
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 409], [r.text for r in answers]
        winner = next(r for r in answers if r.status_code == 200).json()["assignee"]
        loser = next(r for r in answers if r.status_code == 409).json()["holder"]
        assert winner == loser
        audit = _call(a, "GET", f"/v1/cases/{race}", ALICE).json()["audit"]
        assert [x["who"] for x in audit if x["action"] == "claim"] == [winner]


def test_a_verdict_on_one_scorer_and_a_case_close_on_the_other_label_once(split: Split) -> None:
    """A review item judged on A while its case is closed on B, at the same moment: the
    transaction gets one review label — the verdict's (the close then labels nothing) or the
    close's (the verdict is then refused) — never one of each."""
    a, b = split.scorers
    review = {"id": "ops-verdict", "expression": 'merchant_id == "m_verdict"', "action": "review"}
    assert _call(a, "POST", "/v1/rules", body=review).status_code == 201
    for n in range(12):  # before the fix about a third of these labelled twice
        card = f"card_verdict_{n}"
        tx_id = _score(a, card=card, merchant="m_verdict")["transaction_id"]
        case = _call(b, "GET", f"/v1/cases?card_id={card}", BOB).json()["cases"][0]["id"]
        verdict, close = _at_once(
            partial(_call, a, "POST", f"/v1/reviews/{tx_id}", ALICE, {"verdict": "fraud"}),
            partial(_call, b, "POST", f"/v1/cases/{case}/close", BOB, {"outcome": "legitimate"}),
        )
        assert close.status_code == 200, close.text
        outcome = (verdict.status_code, close.json()["labels"])
        assert outcome in ((200, 0), (409, 1)), f"labelled twice: {outcome}"
        item = _call(b, "GET", f"/v1/reviews/{tx_id}", BOB).json()
        assert item["verdict"] == ("fraud" if outcome == (200, 0) else "legitimate")


def _models(service: ServiceProcess) -> list[tuple[str, str, int, int]]:
    """Each model's name, role, learned labels and evaluated labels, as /v1/models shows."""
    models = _call(service, "GET", "/v1/models").json()["models"]
    return [(m["name"], m["role"], int(m["learned"]), int(m["labels"])) for m in models]


def _label(transaction_id: str, fraud: bool) -> dict[str, Any]:
    return {"transaction_id": transaction_id, "is_fraud": fraud,
            "labeled_at": datetime.now(UTC).isoformat(), "source": "chargeback"}  # fmt: skip


def test_labels_posted_to_one_scorer_are_learned_and_shown_by_both(split: Split) -> None:
    a, b = split.scorers
    # the labels of earlier tests (verdicts, closes) learned and shipped: the counts hold still
    assert _wait_settled(split.database), "a label of an earlier test was never settled"
    _poll(lambda: _models(a) == _models(b) == _models(split.learner), "a scorer stayed behind")
    before = _models(split.learner)
    scored = [_score(a, card=f"card_label_{i % 3}", merchant="m_label") for i in range(6)]
    for i, answer in enumerate(scored):
        posted = _call(b, "POST", "/v1/labels", body=_label(answer["transaction_id"], i % 3 == 0))
        assert posted.status_code == 202 and posted.json()["status"] == "accepted", posted.text
    # a label before its transaction, the transaction on the other scorer: adopted on arrival
    early = _tx(card="card_label_early", merchant="m_label")
    parked = _call(b, "POST", "/v1/labels", body=_label(early["transaction_id"], True))
    assert parked.status_code == 202, parked.text
    assert _call(a, "POST", "/v1/transactions", body=early).status_code == 200

    count = len(scored) + 1
    after = [(name, role, learned + count, seen + count) for name, role, learned, seen in before]
    _poll(lambda: _models(split.learner) == after, "the learner never learned the labels", 60)
    _poll(lambda: _models(a) == _models(b) == after, "a scorer never showed them", 30)


def _proposed(answer: httpx.Response) -> int:
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"
    return int(answer.json()["id"])


def test_a_proposal_made_on_one_scorer_is_approved_by_another_key_on_the_other(
    four_eyes: Split,
) -> None:
    a, b = four_eyes.scorers
    on = {"card": "card_fe", "merchant": "m_fe"}
    rule = {"id": "fe-rule", "expression": 'merchant_id == "m_fe"', "action": "decline"}
    proposal = _proposed(_call(a, "POST", "/v1/rules", BOB, rule))
    assert _call(b, "GET", f"/v1/proposals/{proposal}", CAROL).json()["status"] == "pending"

    own = _call(b, "POST", f"/v1/proposals/{proposal}/approve", BOB)
    assert own.status_code == 403 and "self-approval refused" in own.json()["detail"], own.text
    assert _call(b, "GET", "/v1/rules/fe-rule", BOB).status_code == 404
    assert [_score(s, **on)["decided_by"] for s in (a, b)] == ["warmup", "warmup"]

    approved = _call(b, "POST", f"/v1/proposals/{proposal}/approve", CAROL)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "carol")
    assert _score(b, **on)["decided_by"] == "rule"  # applied where it was approved, at once
    _poll(_decides(a, "decline", "rule", **on), "A never applied the rule approved on B")
    history = _call(a, "GET", "/v1/rules/fe-rule/history", BOB).json()["history"]
    assert [h["changed_by"] for h in history] == ["bob"]  # the change is its proposer's

    # a list change proposed on A: two approvers at once, on A and on B, decide it once
    block = {"entity": "card", "value": "card_fe_block", "kind": "block", "reason": "stolen"}
    listing = _proposed(_call(a, "POST", "/v1/lists", BOB, block))
    path = f"/v1/proposals/{listing}/approve"
    answers = _at_once(
        partial(_call, a, "POST", path, ALICE), partial(_call, b, "POST", path, CAROL)
    )
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 200).json()["decided_by"]
    assert next(r for r in answers if r.status_code == 409).json()["decided_by"] == winner
    entries = _call(b, "GET", "/v1/lists?entity=card&prefix=card_fe", BOB).json()["entries"]
    assert [(e["value"], e["created_by"]) for e in entries] == [("card_fe_block", "bob")]
    blocked = {"card": "card_fe_block", "merchant": "m_other"}
    for service in (a, b):
        _poll(_decides(service, "decline", "list", **blocked), "a scorer never saw the block")
