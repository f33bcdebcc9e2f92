"""RedisFeatureStore on a three-node Valkey Cluster (started by the embedded stack) gives the
same features as on one Valkey: no CROSSSLOT error, keys on every node, scripts reloaded
after a flush, and calls whose slot moved are redirected."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fstreams import T0, label, tx
from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot

from app.tools.embedded import EmbeddedStack
from features import store
from features.config import FeatureConfig, FeatureResult
from features.schema import Label, Transaction

pytestmark = pytest.mark.servers  # starts its own servers, whatever the fixtures
M = timedelta(minutes=1)
Event = Transaction | tuple[Label, Transaction] | None  # None: end of a batch


@pytest.fixture
async def cluster_client(cluster: EmbeddedStack) -> AsyncIterator[RedisCluster]:
    urls = cluster.urls()
    assert urls.redis_cluster and urls.redis_url is not None
    client = store.connect_cluster(urls.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def single_client(redis_url: str) -> AsyncIterator[Redis]:
    """Database 11 of the session's single Valkey, flushed before and after."""
    client = store.connect(redis_url.rsplit("/", 1)[0] + "/11")
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


def _stream(seed: int, size: int) -> list[Event]:
    """Many cards and merchants (so keys land on every node); replays, conflicting replays,
    late events and labels, in batches of varying size."""
    rnd = random.Random(seed)
    events: list[Event] = []
    seen: list[Transaction] = []
    for n in range(size):
        roll = rnd.random()
        if seen and roll < 0.07:
            original = rnd.choice(seen)
            conflict = rnd.random() < 0.3
            events.append(
                original.model_copy(update={"amount": Decimal(7)}) if conflict else original
            )
        elif seen and roll < 0.17:
            events.append(
                label(rnd.choice(seen), rnd.random() < 0.7, after=rnd.randrange(-60, 3000) * M)
            )
        elif roll < 0.25:
            events.append(None)
        else:
            minute = rnd.randrange(40 * 24 * 60)
            place = {"lat": 45 + rnd.randrange(5) / 10, "lon": 7.0} if rnd.random() < 0.5 else {}
            seen.append(
                tx(f"x{n}", T0 + minute * M, str(rnd.choice([1, 25, 250, 9999])),
                   card=f"c{rnd.randrange(40)}", merchant=f"m{rnd.randrange(25)}", **place)
            )  # fmt: skip
            events.append(seen[-1])
    return events


async def _run(feature_store: store.RedisFeatureStore, events: Sequence[Event]) -> list[Any]:
    """Every result and every card's features afterwards, in order."""
    out: list[Any] = []
    batch: list[Transaction] = []

    async def flush() -> None:
        if batch:
            out.extend(await feature_store.score_batch(batch))
            batch.clear()

    await feature_store.load_scripts()
    for event in events:
        if isinstance(event, Transaction):
            batch.append(event)
        else:
            await flush()
            if event is not None:
                await feature_store.apply_labels([event])
    await flush()
    for card in sorted({e.card_id for e in events if isinstance(e, Transaction)}):
        out.append((card, await feature_store.card_features(card, T0 + 45 * 24 * 60 * M)))
    return out


async def _keys_per_node(cluster: EmbeddedStack) -> list[int]:
    counts = []
    for url in cluster.redis_cluster_urls():
        node = Redis.from_url(url)
        try:
            counts.append(int(await node.dbsize()))
        finally:
            await node.aclose()
    return counts


async def test_cluster_gives_the_features_of_one_node(
    cluster: EmbeddedStack, cluster_client: RedisCluster, single_client: Redis
) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}"
    config = FeatureConfig(key_prefix=prefix, lateness=timedelta(days=2), card_max_entries=50)
    before = await _keys_per_node(cluster)
    events = _stream(seed=7, size=1500)

    on_cluster = await _run(store.RedisFeatureStore(cluster_client, config), events)
    on_one = await _run(store.RedisFeatureStore(single_client, config), events)

    assert on_cluster == on_one  # every status, reason and feature value, exactly
    results = [r for r in on_one if isinstance(r, FeatureResult)]
    statuses = {r.status for r in results}
    assert statuses == {"fresh", "duplicate", "late"}, statuses  # the stream exercises them
    assert any(r.features.get("merchant_fraud_count_30d") for r in results)  # labels count
    per_node = [n - b for n, b in zip(await _keys_per_node(cluster), before, strict=True)]
    assert all(count > 0 for count in per_node), per_node  # spread over all three nodes
    assert sum(per_node) == await single_client.dbsize()  # the same keys


async def test_scripts_are_reloaded_on_every_node_after_a_flush(
    cluster_client: RedisCluster,
) -> None:
    feature_store = store.RedisFeatureStore(
        cluster_client, FeatureConfig(key_prefix=f"f{uuid.uuid4().hex[:8]}")
    )
    txs = [tx(f"s{i}", i * M, card=f"c{i}", merchant=f"m{i}") for i in range(30)]
    await feature_store.load_scripts()
    await cluster_client.script_flush()  # on every primary
    assert await cluster_client.script_exists(feature_store.scripts.sha("card")) == [False]
    assert {r.status for r in await feature_store.score_batch(txs)} == {"fresh"}
    assert {r.status for r in await feature_store.score_batch(txs)} == {"duplicate"}
    feature_store.scripts.register("keyless", "return 7")  # not loaded yet: NOSCRIPT, loaded
    assert await feature_store.scripts.run([("keyless", (), ())] * 3) == [7, 7, 7]


async def test_a_call_whose_slot_moved_is_redirected(
    cluster: EmbeddedStack, cluster_client: RedisCluster, single_client: Redis
) -> None:
    """The client's slot map is stale (a slot moved after it was read): the card's call is
    answered MOVED and sent again to the new owner, with the same features as on one node."""
    config = FeatureConfig(key_prefix=f"r{uuid.uuid4().hex[:8]}")
    on_cluster = store.RedisFeatureStore(cluster_client, config)
    on_one = store.RedisFeatureStore(single_client, config)
    await on_cluster.load_scripts()
    await on_one.load_scripts()
    first = [tx("a0", 0 * M, card="other", merchant="m1")]
    assert await on_cluster.score_batch(first) == await on_one.score_batch(first)  # map read

    urls = cluster.redis_cluster_urls()
    ports = [int(url.rsplit(":", 1)[1].split("/")[0]) for url in urls]
    nodes = [Redis.from_url(url) for url in urls]
    try:
        ids = [(await node.execute_command("CLUSTER", "MYID")).decode() for node in nodes]
        for n in range(100):  # a card whose slot holds no key yet (a slot must be empty to move)
            card = f"moving{n}"
            slot = key_slot(on_cluster.keys.card(card)[0].encode())
            owner = ports.index(int(cluster_client.nodes_manager.get_node_from_slot(slot).port))
            if await nodes[owner].execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0:
                break
        target = (owner + 1) % len(nodes)
        for i in (target, owner, *({0, 1, 2} - {target, owner})):
            await nodes[i].execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        cards = [card, "other", card]  # the card's two calls stay in order when redirected
        batch = [tx(f"b{i}", (i + 1) * M, card=c, merchant="m1") for i, c in enumerate(cards)]
        stale = cluster_client.nodes_manager.get_node_from_slot(slot)
        assert int(stale.port) == ports[owner]  # the client still sends the card to the owner
        got = await on_cluster.score_batch(batch)
        assert got == await on_one.score_batch(batch)
        assert got[2].features["card_count_1h"] == 1  # it saw the first
        assert await nodes[target].execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) >= 2
        assert await nodes[owner].execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        renewed = cluster_client.nodes_manager.get_node_from_slot(slot)
        assert int(renewed.port) == ports[target]  # the client's slot map was refreshed
    finally:
        for node in nodes:
            await node.aclose()


async def test_a_batch_on_dropped_node_connections_is_sent_again(
    cluster: EmbeddedStack, cluster_client: RedisCluster, single_client: Redis
) -> None:
    """Every pooled node connection is closed by the servers (as by a restart): the calls
    are re-sent through redis-py, once each, with the same features as on one node."""
    config = FeatureConfig(key_prefix=f"d{uuid.uuid4().hex[:8]}")
    on_cluster = store.RedisFeatureStore(cluster_client, config)
    on_one = store.RedisFeatureStore(single_client, config)
    await on_cluster.load_scripts()
    await on_one.load_scripts()
    txs = [tx(f"d{i}", i * M, card=f"c{i % 9}", merchant=f"m{i % 5}") for i in range(60)]
    assert await on_cluster.score_batch(txs[:30]) == await on_one.score_batch(txs[:30])
    killed = 0
    for url in cluster.redis_cluster_urls():
        node = Redis.from_url(url)
        try:
            killed += int(await node.client_kill_filter(_type="normal", skipme=True))
        finally:
            await node.aclose()
    assert killed >= 3  # the store's pooled connection to each node
    again = txs[25:]  # five replays among them: counted once, whatever was sent twice
    assert await on_cluster.score_batch(again) == await on_one.score_batch(again)
