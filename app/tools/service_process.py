"""The service process the demo drives: started with `riverguard serve`, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.tools.embedded import StackUrls, die_with_parent, free_port


@dataclass
class DemoService:
    urls: StackUrls
    api_key: str
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        assert self.urls.kafka_bootstrap is not None
        return self.urls.kafka_bootstrap

    @property
    def database_url(self) -> str:
        assert self.urls.database_url is not None
        return self.urls.database_url

    def start(self, timeout: float = 60) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RIVERGUARD_")}
        env.update(
            {
                "RIVERGUARD_KAFKA_BOOTSTRAP": self.bootstrap,
                "RIVERGUARD_REDIS_URL": str(self.urls.redis_url),
                "RIVERGUARD_DATABASE_URL": self.database_url,
                "RIVERGUARD_API_KEYS": f"{self.api_key}=score|label|admin",
                "RIVERGUARD_PORT": str(self.port),
                "RIVERGUARD_LOG_LEVEL": "WARNING",
            }
        )
        riverguard = Path(sys.executable).with_name("riverguard")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(riverguard), "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        wait_ready(self.url, self.process, self.log_path, timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

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


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    """Poll ``url``/readyz until 200; fail with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the service exited during start-up:\n{tail}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the service was not ready within {timeout:.0f}s:\n{tail}")


def _value(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])
