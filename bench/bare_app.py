"""The in-run baseline: a bare FastAPI endpoint that parses the body and answers."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/bare")
async def bare(request: Request) -> dict[str, object]:
    body = json.loads(await request.body())
    return {"transaction_id": body.get("transaction_id"), "score": 0.5, "decision": "approve"}


@app.post("/v1/transactions")
async def bare_transaction(request: Request) -> dict[str, object]:
    """The same bare answer at the service's path (bench/backfill.py posts here)."""
    return await bare(request)
