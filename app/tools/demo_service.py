"""What the demo reads from the service it drives: counters, models and stored counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.tools.embedded import StackUrls
from app.tools.service_process import ServiceProcess, stack_env


@dataclass
class DemoService:
    """`riverguard serve` on the demo's stack, and the few reads the live view needs."""

    urls: StackUrls
    api_key: str
    log_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)  # settings beside the stack's
    process: ServiceProcess = field(init=False)

    def __post_init__(self) -> None:
        self.process = ServiceProcess({**stack_env(self.urls, self.api_key), **self.extra_env})

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def bootstrap(self) -> str:
        assert self.urls.kafka_bootstrap is not None
        return self.urls.kafka_bootstrap

    @property
    def database_url(self) -> str:
        assert self.urls.database_url is not None
        return self.urls.database_url

    def start(self, timeout: float = 60) -> None:
        self.process.start(self.log_path, timeout)

    def stop(self) -> None:
        self.process.stop()

    async def samples(self) -> dict[str, float]:
        """Selected counters from the service's /metrics."""
        async with httpx.AsyncClient(timeout=5) as client:
            text = (await client.get(f"{self.url}/metrics")).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("riverguard_inputs_total{") and 'kind="transaction"' in line:
                outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
                path = line.split('path="', 1)[1].split('"', 1)[0]
                out[f"{outcome}:{path}"] = out.get(f"{outcome}:{path}", 0) + _value(line)
            elif line.startswith("riverguard_labels_total{"):
                status = line.split('status="', 1)[1].split('"', 1)[0]
                out[f"labels:{status}"] = _value(line)
            elif line.startswith("riverguard_dead_letters_total{"):
                out["dead_letters"] = out.get("dead_letters", 0) + _value(line)
        return out

    async def models(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(
                f"{self.url}/v1/models", headers={"X-API-Key": self.api_key}
            )
        response.raise_for_status()
        models: list[dict[str, Any]] = response.json()["models"]
        return models

    async def dead_letters(self) -> int:
        return int((await self.samples()).get("dead_letters", 0))

    async def counts(self) -> dict[str, int]:
        conn = await asyncpg.connect(self.database_url)
        try:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM transactions) AS transactions,"
                " (SELECT count(*) FROM labels) AS labels"
            )
        finally:
            await conn.close()
        assert row is not None
        return {"transactions": int(row["transactions"]), "labels": int(row["labels"])}


def _value(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])
