"""The composition root: settings and backends in, a running :class:`AppState` out.

Everything the service needs is built here and nowhere else — feature store, model pool,
repository, group committer, learner, stream workers — and torn down in reverse order:
workers stop consuming, the group committer drains, the learner finishes its queue and writes
a final checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta

from app import auth, health, probes, series, stream
from app.config import Settings
from app.groupcommit import GroupCommitter
from app.health import Readiness
from app.learning import CheckpointPolicy, Learner
from app.metrics import Metrics
from app.repository import Repository, ScoredRecord
from app.resources import Backends, ConfigurationError, open_backends
from app.scoring import Scorer
from app.service import ScoringService
from app.state import AppState
from features import config as feature_config
from features import definitions
from features import store as feature_store
from models import pool as model_pool
from models import zoo

log = logging.getLogger(__name__)


def api_keys(settings: Settings) -> list[auth.ApiKey]:
    """The configured keys; outside dev mode, none configured is a start-up error."""
    text = settings.api_keys.get_secret_value() if settings.api_keys else ""
    try:
        keys = auth.parse_keys(text)
    except auth.KeyConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    if not keys and not settings.dev_mode:
        raise ConfigurationError(
            "RIVERGUARD_API_KEYS is empty: set key=score|label|admin entries "
            "(or run `riverguard dev`, which generates a key)"
        )
    return keys


def build_pool(settings: Settings, champion: str | None) -> model_pool.ModelPool:
    scoring = settings.scoring
    names = [scoring.champion, *[c for c in scoring.challengers if c != scoring.champion]]
    unknown = [n for n in names if n not in zoo.ZOO]
    if unknown:
        raise ConfigurationError(f"unknown model(s) {unknown}; available: {sorted(zoo.ZOO)}")
    chosen = champion if champion in names else scoring.champion
    return model_pool.ModelPool(
        [zoo.ZOO[n] for n in names],
        champion=chosen,
        thresholds=model_pool.Thresholds(
            review=scoring.review_threshold, decline=scoring.decline_threshold
        ),
        metrics_window=scoring.metrics_window,
        policy=model_pool.PromotionPolicy(
            enabled=scoring.auto_promote,
            min_labels=scoring.promotion_min_labels,
            margin=scoring.promotion_margin,
            confidence=scoring.promotion_confidence,
        ),
    )


def _writer(repository: Repository, settings: Settings) -> GroupCommitter[ScoredRecord, bool]:
    async def flush(records: Sequence[ScoredRecord]) -> list[bool]:
        inserted = await repository.insert_scored(records)
        seen: set[str] = set()
        result = []
        for record in records:  # two copies of one id in a group: only the first is new
            new = record.transaction_id in inserted and record.transaction_id not in seen
            seen.add(record.transaction_id)
            result.append(new)
        return result

    return GroupCommitter(
        flush, flush_ms=settings.persistence.flush_ms, flush_max=settings.persistence.flush_max
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, metrics: Metrics) -> AsyncIterator[AppState]:
    async with open_backends(settings) as backends:
        state = await _assemble(settings, metrics, backends)
        learner_task = asyncio.create_task(state.learner.run(), name="learner")
        watcher = asyncio.create_task(
            health.watch(state.readiness, _readiness_reporter(state), every=5.0), name="readiness"
        )
        workers = await _start_workers(state)
        try:
            yield state
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await _stop(state, workers, learner_task)


def _readiness_reporter(state: AppState) -> Callable[[dict[str, str]], None]:
    def report(problems: dict[str, str]) -> None:
        names = set(state.readiness.probes) | set(state.readiness.heartbeats) | set(problems)
        for name in names:
            state.metrics.dependency_up.labels(name).set(0 if name in problems else 1)
        state.metrics.ready.set(0 if problems else 1)

    return report


async def _assemble(settings: Settings, metrics: Metrics, backends: Backends) -> AppState:
    repository = Repository(backends.db)
    features = feature_store.RedisFeatureStore(
        backends.redis,
        feature_config.FeatureConfig(lateness=timedelta(days=settings.scoring.lateness_days)),
    )
    await features.load_scripts()
    pool = build_pool(settings, await repository.current_champion())
    learner = Learner(
        repository=repository,
        pool=pool,
        features=features,
        metrics=metrics,
        checkpoints=CheckpointPolicy(
            every_labels=settings.scoring.checkpoint_every_labels,
            every_seconds=settings.scoring.checkpoint_every_seconds,
            feature_set=definitions.FEATURE_SET_ID,
        ),
        policy_every_labels=settings.scoring.promotion_every_labels,
        parked_ttl=timedelta(days=settings.scoring.parked_label_ttl_days),
    )
    relearned = await learner.restore()
    log.info("models restored; %d labels re-learned from the log", relearned)
    service = ScoringService(
        features,
        Scorer(pool, metrics, definitions.FEATURE_SET_ID),
        repository,
        metrics,
        _writer(repository, settings),
        on_stored=learner.notify_arrived,
    )
    readiness = Readiness(stall_seconds=settings.stream.stall_seconds)
    probes.install(readiness, backends)
    state = AppState(settings, backends, readiness, metrics, repository, features, service, learner)
    learner.on_promotion = state.record_promotion
    metrics.watch_pool(state.pool_status)
    series.at_start(metrics, pool.names())
    return state


async def _start_workers(state: AppState) -> list[tuple[stream.Worker, asyncio.Task[None]]]:
    if state.settings.role == "api" or state.backends.producer is None:
        return []
    return await stream.start_workers(state)


async def _stop(
    state: AppState,
    workers: list[tuple[stream.Worker, asyncio.Task[None]]],
    learner_task: asyncio.Task[None],
) -> None:
    await stream.stop_workers(workers, state.settings.stream.shutdown_seconds)
    await state.service.writer.drain()
    learner_task.cancel()
    await asyncio.gather(learner_task, return_exceptions=True)
    await state.learner.drain()
    try:
        await state.learner.checkpoint()
    except Exception:
        log.exception("final checkpoint failed; the learning log still holds every label")
