"""The service the demo drives, in the layout users deploy, and what the demo reads from it.

Two real processes on the demo's stack: ``riverguard learner`` (the one process that learns and
publishes bundles) and ``RIVERGUARD_ROLE=scorer riverguard serve`` (the API and the Kafka
workers, scoring with the learner's bundles). The demo talks to the scorer as a client would,
reads the models' quality from the learner, and reads each process's CPU time, so the REST
latency it reports stands beside what a request cost.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.config import ScoringSettings
from app.tools.embedded import StackUrls
from app.tools.service_process import RIVERGUARD, ServiceProcess, stack_env

#: The model every demo compares the champion with on the same stream: ``blend``, the long-time
#: default, or, when ``blend`` is the champion, the ``stack`` that would replace it.
BASELINE, BASELINE_OF_BLEND = "blend", "stack"


def lineup(defaults: ScoringSettings | None = None) -> tuple[str, str, tuple[str, ...]]:
    """(champion, the model it is compared with, challengers) of the demo's service.

    The service runs with the default lineup (the demo's children ignore the caller's
    RIVERGUARD_* variables); the compared model is added as a challenger if it is missing.

    >>> lineup(ScoringSettings(champion="stack", challengers=("logreg",)))
    ('stack', 'blend', ('logreg', 'blend'))
    >>> lineup(ScoringSettings(champion="blend", challengers=("stack", "hat")))
    ('blend', 'stack', ('stack', 'hat'))
    """
    defaults = defaults or ScoringSettings()
    champion = defaults.champion
    compared = BASELINE_OF_BLEND if champion == BASELINE else BASELINE
    challengers = defaults.challengers
    if compared not in challengers:
        challengers = (*challengers, compared)
    return champion, compared, challengers


@dataclass
class DemoService:
    """A learner and a scorer on the demo's stack, and the few reads the live view needs."""

    urls: StackUrls
    api_key: str
    log_path: Path  # the scorer's log; the learner's goes beside it
    extra_env: dict[str, str] = field(default_factory=dict)  # settings beside the stack's
    scorer: ServiceProcess = field(init=False)
    learner: ServiceProcess = field(init=False)

    def __post_init__(self) -> None:
        _, _, challengers = lineup()
        env = {
            **stack_env(self.urls, self.api_key),
            "RIVERGUARD_SCORING__CHALLENGERS": json.dumps(list(challengers)),
            **self.extra_env,
        }
        self.learner = ServiceProcess(env, command=(str(RIVERGUARD), "learner"))
        self.scorer = ServiceProcess({**env, "RIVERGUARD_ROLE": "scorer"})

    @property
    def url(self) -> str:
        """Where clients go: the scorer."""
        return self.scorer.url

    @property
    def bootstrap(self) -> str:
        assert self.urls.kafka_bootstrap is not None
        return self.urls.kafka_bootstrap

    @property
    def database_url(self) -> str:
        assert self.urls.database_url is not None
        return self.urls.database_url

    def start(self, timeout: float = 300) -> None:
        """Start the learner, then the scorer, each once ready.

        One after the other from this thread: a child is signalled when the thread that started
        it ends, so no helper thread may start them. Each takes a few CPU-seconds (imports,
        models, migrations); the deadline is generous because a loaded machine stretches them.
        """
        self.learner.start(self.log_path.with_name(f"{self.log_path.stem}-learner.log"), timeout)
        self.scorer.start(self.log_path, timeout)

    def stop(self) -> None:
        """The scorer first (its workers finish their batches), then the learner."""
        self.scorer.stop()
        self.learner.stop()

    def cpu_seconds(self) -> dict[str, float | None]:
        """CPU time (user + system) each process has used so far; None where unreadable."""
        return {
            role: process_cpu_seconds(p.pid) if p.process is not None else None
            for role, p in (("scorer", self.scorer), ("learner", self.learner))
        }

    async def samples(self) -> dict[str, float]:
        """Selected counters: inputs and dead letters from the scorer, labels from both."""
        out = _counters(await _metrics_text(self.scorer.url))
        learner = _counters(await _metrics_text(self.learner.url))
        for key, value in learner.items():
            if key.startswith("labels:") and key != "labels:arrived":
                out[key] = value
        return out

    async def models(self) -> list[dict[str, Any]]:
        """GET /v1/models from the learner: its rolling metrics are never a bundle behind."""
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(
                f"{self.learner.url}/v1/models", headers={"X-API-Key": self.api_key}
            )
        response.raise_for_status()
        models: list[dict[str, Any]] = response.json()["models"]
        return models

    async def dead_letters(self) -> int:
        return int((await self.samples()).get("dead_letters", 0))

    async def freshness(self) -> dict[str, float]:
        """The scorer's bundles (loaded, mean delay after publication, last seq) and the
        learner's learning-log head."""
        scorer = _counters(await _metrics_text(self.scorer.url))
        learner = _counters(await _metrics_text(self.learner.url))
        loads = scorer.get("riverguard_bundle_load_delay_seconds_count", 0.0)
        return {
            "loads": loads,
            "mean_delay_s": scorer.get("riverguard_bundle_load_delay_seconds_sum", 0.0)
            / max(loads, 1.0),
            "loaded_seq": scorer.get("riverguard_bundle_loaded_seq", -1.0),
            "learner_head": learner.get("riverguard_learning_log_head", -1.0),
        }

    async def counts(self) -> dict[str, int]:
        """Stored transactions and labels, labels the learner has not settled yet, and the
        learning log's last position (a settled label is logged, then learned)."""
        conn = await asyncpg.connect(self.database_url)
        try:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM transactions) AS transactions,"
                " (SELECT count(*) FROM labels) AS labels,"
                " (SELECT count(*) FROM labels WHERE status = 'received') AS unsettled,"
                " (SELECT coalesce(max(seq), 0) FROM learn_log) AS logged"
            )
        finally:
            await conn.close()
        assert row is not None
        return {key: int(row[key]) for key in ("transactions", "labels", "unsettled", "logged")}

    async def unlearned(self) -> int:
        """Labels the scorer has taken in that the models it scores with have not learned:
        those the learner has not settled yet, and those logged after the scorer's bundle."""
        counts = await self.counts()
        scorer = _counters(await _metrics_text(self.scorer.url))
        loaded = int(scorer.get("riverguard_bundle_loaded_seq", -1.0))
        return counts["unsettled"] + max(counts["logged"] - max(loaded, 0), 0)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` from /proc (Linux); None elsewhere or once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # after the command name (which may hold spaces), fields start at the 3rd (state);
    # utime and stime are the 14th and 15th, in clock ticks
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _metrics_text(url: str) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        return (await client.get(f"{url}/metrics")).text


def _counters(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("riverguard_inputs_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            if 'kind="label"' in line:  # taken in: durable, for the learner to settle
                if outcome not in ("rejected", "dead_letter"):
                    out["labels:arrived"] = out.get("labels:arrived", 0) + _value(line)
                continue
            path = line.split('path="', 1)[1].split('"', 1)[0]
            out[f"{outcome}:{path}"] = out.get(f"{outcome}:{path}", 0) + _value(line)
        elif line.startswith("riverguard_labels_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            out[f"labels:{status}"] = out.get(f"labels:{status}", 0) + _value(line)
        elif line.startswith("riverguard_dead_letters_total{"):
            out["dead_letters"] = out.get("dead_letters", 0) + _value(line)
        elif line.startswith(_BUNDLE_GAUGES):
            out[line.split(" ", 1)[0]] = _value(line)
    return out


# how fresh the scorer's models are: the bundles it loaded, and how long after publication
_BUNDLE_GAUGES = (
    "riverguard_bundle_loaded_seq ",
    "riverguard_bundle_load_delay_seconds_count ",
    "riverguard_bundle_load_delay_seconds_sum ",
    "riverguard_learning_log_head ",
)


def _value(line: str) -> float:
    return float(line.rsplit(" ", 1)[1])
