"""The composition root: settings and backends in, a running service out.

Everything the service needs is built here and nowhere else — feature store, model pool,
repository, group committer, learner, stream workers — and torn down in reverse order:
workers stop consuming, the group committer drains, the learner finishes its queue and writes
a final checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

import httpx

from app import backends as backend_clients
from app.api import auth
from app.api.deps import AppState
from app.backends import Backends, ConfigurationError, open_backends
from app.bundles.redis_store import RedisBundleStore
from app.config import Settings
from app.core import budgets, bundles, decisions, outbox, readiness, series
from app.core.cases import CaseDesk, Sla
from app.core.decisions import WarmUp
from app.core.learning import CheckpointPolicy, Learner
from app.core.lists import ListBook
from app.core.metrics import Metrics
from app.core.promotion import Promotions
from app.core.proposals import Proposals
from app.core.readiness import Readiness
from app.core.reviews import ReviewDesk
from app.core.rule_cost import CostBudget
from app.core.rulebook import RuleBook, RuleFileError
from app.core.rules import RunBudget
from app.core.scoring import Scorer, ScoringService, group_writer
from app.postgres.cases import PgCaseStore
from app.postgres.insights import PgInsights
from app.postgres.leadership import PgLeadership
from app.postgres.lists import PgListStore
from app.postgres.outbox import PgOutbox
from app.postgres.promotions import PgPromotionRequests
from app.postgres.proposals import PgProposalStore
from app.postgres.recent import PgRecentTraffic
from app.postgres.repository import PgRepository
from app.postgres.reviews import PgReviewStore
from app.postgres.rules import PgRuleStore
from app.postgres.sessions import PgSessionStore
from app.stream import outbox as outward
from app.stream import runner as stream_runner
from app.stream.worker import StreamContext, Worker
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
            "RIVERGUARD_API_KEYS is empty: set key=score|label|review|admin[@name] entries "
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


def feature_settings(settings: Settings) -> feature_config.FeatureConfig:
    """The feature store's time bounds from the scoring settings."""
    scoring = settings.scoring
    ttl = None if scoring.entity_ttl_days is None else timedelta(days=scoring.entity_ttl_days)
    try:
        return feature_config.FeatureConfig(
            lateness=timedelta(days=scoring.lateness_days), entity_ttl=ttl
        )
    except ValueError as exc:
        raise ConfigurationError(f"RIVERGUARD_SCORING__ENTITY_TTL_DAYS: {exc}") from None


@contextlib.asynccontextmanager
async def running(settings: Settings, metrics: Metrics) -> AsyncIterator[AppState]:
    async with open_backends(settings) as backends, contextlib.AsyncExitStack() as stack:
        state = await _assemble(settings, metrics, backends)
        await state.learner.try_to_lead()
        learner_task = asyncio.create_task(state.learner.run(), name="learner")
        follower = _follower(settings, state, backends)
        state.readiness.probes["bundle"] = follower.problem
        background = [
            asyncio.create_task(
                readiness.watch(state.readiness, _readiness_reporter(state), every=5.0),
                name="readiness",
            ),
            asyncio.create_task(follower.run(every=1.0), name="bundle-follower"),
            asyncio.create_task(
                state.lists.run(every=settings.decisions.refresh_seconds), name="lists"
            ),
            asyncio.create_task(_decision_gauges(state), name="decision-gauges"),
            asyncio.create_task(
                state.rules.follow(settings.decisions.refresh_seconds), name="rules-refresh"
            ),
        ]
        keeper = _cutoff_keeper(settings, state, backends)
        if keeper.budget.enabled:
            background.append(
                asyncio.create_task(
                    keeper.run(
                        lambda: state.learner.leading, lambda: state.service.scorer.pool.champion
                    ),
                    name="budget-cutoffs",
                )
            )
        background += await _outward_tasks(settings, state.metrics, backends, stack)
        workers = await _start_workers(state, backends)
        try:
            yield state
        finally:
            for task in background:
                task.cancel()
            await _stopped("background", background, SHUTDOWN_WAIT_SECONDS)
            await _stop(state, workers, learner_task)


async def _outward_tasks(
    settings: Settings, metrics: Metrics, backends: Backends, stack: contextlib.AsyncExitStack
) -> list[asyncio.Task[None]]:
    """The outbox relay (every process; one relays at a time) and a sender per webhook."""
    o, store = settings.outbox, PgOutbox(backends.db)
    publish: outbox.Publish = outward.discard
    if backends.producer is not None and settings.kafka_bootstrap:
        topics = settings.topics
        await stream_runner.ensure_topics(
            settings.kafka_bootstrap, [topics.decisions], topics.partitions
        )
        publish = outward.kafka_publisher(backends.producer, topics.decisions)
    names = [endpoint.name for endpoint in o.webhooks]
    series.for_outbox(metrics, names)
    relay = outbox.Relay(
        store, publish, names, metrics.outbox_relayed, metrics.outbox_errors, o.relay_batch
    )
    tasks = [asyncio.create_task(relay.run(o.relay_every_seconds), name="outbox-relay")]
    if not o.webhooks:
        return tasks
    client = await stack.enter_async_context(
        httpx.AsyncClient(timeout=o.webhook_timeout_seconds, follow_redirects=False)
    )
    for endpoint in o.webhooks:
        secret = endpoint.secret.get_secret_value().encode()
        sender = outbox.WebhookSender(
            store,
            outbox.Endpoint(endpoint.name, endpoint.url, secret),
            outward.http_poster(client),
            metrics.webhook_deliveries,
            clock=lambda: datetime.now(UTC),
            max_attempts=o.webhook_max_attempts,
            backoff_s=o.webhook_backoff_seconds,
            backoff_cap_s=o.webhook_backoff_max_seconds,
            timeout_s=o.webhook_timeout_seconds,
        )
        task = sender.run(o.relay_every_seconds, metrics.outbox_errors)
        tasks.append(asyncio.create_task(task, name=f"webhook-{endpoint.name}"))
    return tasks


def _follower(settings: Settings, state: AppState, backends: Backends) -> bundles.Follower:
    """While this process does not lead, it scores with the leader's newest bundle."""

    def swap(seq: int, pool: model_pool.ModelPool) -> None:
        # no await in here: scorer, learner and promotions change pools in one step
        state.service.scorer.pool = pool
        state.learner.pool = pool
        state.learner.last_learn_seq = seq
        state.promotions.pool = pool
        if state.learner.warmup is not None:
            state.learner.warmup.observe_pool(pool)
        state.metrics.learning_log_head.set(seq)

    return bundles.Follower(
        store=RedisBundleStore(backends.redis),
        make_pool=lambda champion: build_pool(settings, champion),
        feature_set=definitions.FEATURE_SET_ID,
        metrics=state.metrics,
        swap=swap,
        leading=lambda: state.learner.leading,
        max_lag_seconds=settings.scoring.max_bundle_lag_seconds,
    )


def _cutoff_keeper(settings: Settings, state: AppState, backends: Backends) -> budgets.CutoffKeeper:
    """Review/decline cutoffs: fixed, or recomputed from a budget by the leader and followed."""
    d, scoring = settings.decisions, settings.scoring
    budget = budgets.Budget(
        review=d.review_budget,
        decline=d.decline_budget,
        window=d.budget_window,
        min_scores=d.budget_min_scores,
        fixed_review=scoring.review_threshold,
        fixed_decline=scoring.decline_threshold,
    )

    def apply(cut: budgets.Cutoffs) -> None:
        state.service.scorer.cutoffs = cut
        budgets.show(state.metrics, cut, budget)

    def rescore(rows: Sequence[Mapping[str, float]]) -> Awaitable[list[float]]:
        return budgets.rescore(state.service.scorer.pool, rows)

    apply(budget.cutoffs(state.service.scorer.pool.champion, []))
    return budgets.CutoffKeeper(
        budget=budget,
        window=budgets.RecentWindow(PgRecentTraffic(backends.db), d.budget_window),
        rescore=rescore,
        store=RedisBundleStore(backends.redis),
        apply=apply,
        every_seconds=d.budget_every_seconds,
    )


async def _decision_gauges(state: AppState, every: float = 5.0) -> None:
    """The review queue's size and age (one indexed count) and the live list entries."""
    while True:
        for kind, count in state.lists.index.counts(datetime.now(UTC)).items():
            state.metrics.list_entries.labels(kind).set(count)
        try:
            await state.reviews.observe_queue()
        except Exception:
            log.warning("review queue gauges not refreshed", exc_info=True)
        try:
            await state.cases.observe(datetime.now(UTC))
        except Exception:
            log.warning("case gauges not refreshed", exc_info=True)
        await asyncio.sleep(every)


def _readiness_reporter(state: AppState) -> Callable[[dict[str, str]], None]:
    def report(problems: dict[str, str]) -> None:
        names = set(state.readiness.probes) | set(state.readiness.heartbeats) | set(problems)
        for name in names:
            state.metrics.dependency_up.labels(name).set(0 if name in problems else 1)
        state.metrics.ready.set(0 if problems else 1)

    return report


async def _assemble(settings: Settings, metrics: Metrics, backends: Backends) -> AppState:
    repository = PgRepository(backends.db)
    features = feature_store.RedisFeatureStore(backends.redis, feature_settings(settings))
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
        warmup=WarmUp(settings.scoring.warmup_labels, settings.scoring.warmup_frauds),
        leadership=PgLeadership(
            str(settings.secret("database_url")), lease_seconds=settings.scoring.lease_seconds
        ),
        bundles=RedisBundleStore(backends.redis),
        bundle_every_seconds=settings.scoring.bundle_every_seconds,
        candidate=settings.role != "scorer",
    )
    promotions = Promotions(pool, repository, metrics, PgPromotionRequests(backends.db))
    learner.promotions = promotions
    relearned = await learner.restore()
    log.info("models restored; %d labels re-learned from the log", relearned)
    service = ScoringService(
        features,
        Scorer(pool, metrics, definitions.FEATURE_SET_ID, learner.warmup),
        repository,
        metrics,
        group_writer(repository, settings.persistence.flush_ms, settings.persistence.flush_max),
        on_stored=learner.notify_arrived,
    )
    rule_store = PgRuleStore(backends.db)
    rules = await _rule_book(settings, rule_store, metrics.rules_disabled.inc)
    checks = Readiness(stall_seconds=settings.stream.stall_seconds)
    backend_clients.install_probes(checks, backends)
    metrics.watch_pool(promotions.models)
    series.at_start(metrics, pool.names())
    series.for_analysts(metrics, [k.name for k in api_keys(settings) if "review" in k.scopes])
    scorer = service.scorer
    scorer.rules = decisions.rule_check(
        lambda: rules.current,
        lambda rule_id: metrics.rule_errors.labels(rule_id).inc(),
        lambda rule_id: metrics.rule_shadow_hits.labels(rule_id).inc(),
    )
    lists = ListBook(PgListStore(backends.db))
    # entity names are a Literal of str; the scorer only reads them
    scorer.lists = lambda tx, now: cast(Mapping[str, Sequence[str]], lists.index.hits(tx, now))
    await lists.refresh()  # a process scores with the lists from its first transaction
    return AppState(
        settings=settings,
        readiness=checks,
        metrics=metrics,
        service=service,
        learner=learner,
        promotions=promotions,
        features=features,
        records=repository,
        lists=lists,
        reviews=ReviewDesk(PgReviewStore(backends.db, repository), metrics, learner),
        rules=rules,
        backtests=rule_store,
        insights=PgInsights(backends.db),
        sessions=PgSessionStore(backends.db),
        cases=_case_desk(settings, backends, metrics, learner),
        proposals=Proposals(
            PgProposalStore(backends.db),
            rules,
            lists,
            rule_store,
            settings.decisions.backtest_max_rows,
            settings.decisions.backtest_seconds,
        ),
    )


def _case_desk(
    settings: Settings, backends: Backends, metrics: Metrics, learner: Learner
) -> CaseDesk:
    c = settings.cases
    sla = Sla(c.sla_high_hours * 3600, c.sla_medium_hours * 3600, c.sla_low_hours * 3600)
    hold = timedelta(minutes=c.claim_minutes)
    return CaseDesk(PgCaseStore(backends.db), metrics, sla, hold, learner)


async def _rule_book(
    settings: Settings, store: PgRuleStore, on_disabled: Callable[[], None]
) -> RuleBook:
    """The stored rules, after upserting the rules file (a bad file stops the start)."""
    d = settings.decisions
    book = RuleBook(
        store,
        max_length=d.max_rule_length,
        budget=CostBudget(d.rule_budget_us, d.rules_budget_us, d.rule_check_seconds),
        runtime=RunBudget(limit_s=d.rule_runtime_budget_us / 1e6),
        on_disabled=lambda rule_id: on_disabled(),
    )
    path = settings.decisions.rules_file
    if path is not None:
        try:
            changed = await book.load_file(path.read_bytes(), path.name)
        except OSError as exc:
            raise ConfigurationError(f"rules file {path.name}: {exc.strerror}") from None
        except RuleFileError as exc:
            raise ConfigurationError(str(exc)) from None
        log.info("rules file %s: %d rule(s) changed", path.name, changed)
    await book.refresh()
    return book


async def _start_workers(
    state: AppState, backends: Backends
) -> list[tuple[Worker, asyncio.Task[None]]]:
    if state.settings.role in ("api", "learner") or backends.producer is None:
        return []
    context = StreamContext(
        settings=state.settings,
        service=state.service,
        learner=state.learner,
        readiness=state.readiness,
        metrics=state.metrics,
        producer=backends.producer,
    )
    return await stream_runner.start_workers(context)


#: How long a shutdown waits for one group of tasks before it logs them and goes on. A task
#: that outlives it is a bug (a swallowed cancellation, a wait on something that never comes);
#: its stack in the log says where, and the process still stops instead of hanging.
SHUTDOWN_WAIT_SECONDS = 30.0


async def _stopped(what: str, tasks: Sequence[asyncio.Task[None]], seconds: float) -> None:
    """Wait for ``tasks`` (already cancelled, or finishing) at most ``seconds``."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        stack = io.StringIO()
        task.print_stack(file=stack)
        log.error(
            "shutdown: %s task %s still running after %.0f s; going on without it\n%s",
            what, task.get_name(), seconds, stack.getvalue(),
        )  # fmt: skip


async def _stop(
    state: AppState,
    workers: list[tuple[Worker, asyncio.Task[None]]],
    learner_task: asyncio.Task[None],
) -> None:
    await stream_runner.stop_workers(workers, state.settings.stream.shutdown_seconds)
    draining = [
        asyncio.create_task(state.service.drain(), name="rest-batches"),
        asyncio.create_task(state.service.writer.drain(), name="group-commit"),
    ]  # REST batches still in flight write through the committer: one after the other
    await _stopped("drain", draining[:1], SHUTDOWN_WAIT_SECONDS)
    await _stopped("drain", draining[1:], SHUTDOWN_WAIT_SECONDS)
    learner_task.cancel()
    await _stopped("learner", [learner_task], SHUTDOWN_WAIT_SECONDS)
    learner = state.learner
    if not learner.candidate or (learner.leadership is not None and learner.epoch == 0):
        return  # never led: nothing of its own to settle or checkpoint
    await learner.drain()
    try:
        await learner.checkpoint()
    except Exception:
        log.exception("final checkpoint failed; the learning log still holds every label")
