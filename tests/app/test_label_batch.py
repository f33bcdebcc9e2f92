"""POST /v1/labels/batch: labels recorded in their order, all or none, each answered."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.app.conftest import LABELER, SCORER, label, tx

PAN = "4111111111111111"


def test_a_batch_is_learned_in_order_with_one_answer_per_label(client: TestClient) -> None:
    ids = []
    for _ in range(3):
        body = tx()
        assert client.post("/v1/transactions", json=body, headers=SCORER).status_code == 200
        ids.append(body["transaction_id"])
    batch = [label(ids[0], True), label(ids[1]), label(ids[0], True), label(ids[2], True),
             label("never-seen-batch-tx")]  # fmt: skip
    answer = client.post("/v1/labels/batch", json=batch, headers=LABELER)
    assert answer.status_code == 202
    statuses = [(item["transaction_id"], item["status"]) for item in answer.json()["labels"]]
    assert statuses == [(ids[0], "learned"), (ids[1], "learned"), (ids[0], "duplicate"),
                        (ids[2], "learned"), ("never-seen-batch-tx", "parked")]  # fmt: skip
    assert client.get(f"/v1/transactions/{ids[2]}", headers=SCORER).json()["label"] is True


def test_one_bad_label_refuses_the_batch_and_says_where(client: TestClient) -> None:
    body = tx()
    client.post("/v1/transactions", json=body, headers=SCORER)
    good = label(body["transaction_id"], True)
    bad = {**label(PAN), "is_fraud": "yes"}
    answer = client.post("/v1/labels/batch", json=[good, bad, 7], headers=LABELER)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert [(e["loc"], e["type"]) for e in errors] == [
        (["body", "1", "is_fraud"], "bool_type"), (["body", "2"], "not_an_object")
    ]  # fmt: skip
    assert all(e["msg"] for e in errors)
    assert PAN not in answer.text
    assert (
        client.get(f"/v1/transactions/{body['transaction_id']}", headers=SCORER).json()["label"]
        is None
    )  # nothing of the batch was recorded


def test_batch_shape_and_scope(client: TestClient) -> None:
    one = [label("x")]
    assert client.post("/v1/labels/batch", json=one, headers=SCORER).status_code == 403
    for body in ([], {"transaction_id": "x"}, [label("x")] * 401):
        answer = client.post("/v1/labels/batch", content=json.dumps(body), headers=LABELER)
        assert answer.status_code == 400, body
        assert answer.json()["errors"][0]["type"] == "label_batch"
