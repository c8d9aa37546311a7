"""The streams on one Redis against a 3-master Redis Cluster: messages/s, shard balance, slot balance.

Both backends are private redis-server processes started here, without persistence (the same for
both): one plain server, and 3 masters with a replica each (tests/cluster.py). On each, ``CLIENTS``
processes publish ``MESSAGES`` face crops between them and read them back with the stream library,
each process the producer and the consumer group of its own shards (one StreamConsumer per shard,
emotune_common.sharded), as the services do. Rounds alternate between the two backends and the
median is kept. Besides messages/s, the Redis processes' own CPU time over the run gives messages
per second per core of Redis: on a 2-core machine the Python clients, not Redis, fill the cores, so
that is the figure that says what a node on a machine of its own would carry.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from multiprocessing.synchronize import Barrier
from pathlib import Path

import redis

from bench.metrics import cpu_s
from bench.sizes import size
from emotune.v1 import messages_pb2
from emotune_common.consumer import StreamConsumer
from emotune_common.ids import make_header
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import connect
from emotune_common.settings import StreamSettings
from emotune_common.shards import shard_of, shard_stream
from tests.cluster import RedisCluster
from tests.processes import PATIENCE_S, RedisServer, free_port

MESSAGES = size("BENCH_CLUSTER_MESSAGES", 40_000, 400)
ROUNDS = size("BENCH_CLUSTER_ROUNDS", 3, 1)
CLIENTS = 2
SHARDS = 16
BATCH = 100
BALANCE_SESSIONS = 1_000
FACES = "emotune:faces"


def _session_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(count)]


async def _client(url: str, shards: list[int], of: int, messages: int, wait: int, barrier: Barrier) -> None:
    """Publish ``messages`` crops over ``shards`` of ``of`` (a session each) and consume them all back, once every
    client is connected and ready (``barrier``: the parent's clock starts there, not at process start)."""
    client = connect(url)
    sessions = {shard: next(s for s in _session_ids(10_000, shard) if shard_of(s, of) == shard) for shard in shards}
    pixels = os.urandom(48 * 48)

    def crop(session: str, number: int) -> messages_pb2.FaceCrop:
        header = make_header(session, "bench")  # a message id each: the consumer skips repeated ids
        return messages_pb2.FaceCrop(header=header, pixels=pixels, width=48, height=48, frame_number=number)

    settings = StreamSettings(batch_size=BATCH, block_ms=100, dedupe_ttl_s=0, shards=of)
    handled = Counter()

    def counter(shard: int):
        async def handle(batch) -> None:
            handled[shard] += len(batch)

        return handle

    per_shard = messages // len(shards)
    consumers = {
        shard: StreamConsumer(client, shard_stream(FACES, shard), "bench", counter(shard), consumer="c",
                              settings=settings, message_type=messages_pb2.FaceCrop)
        for shard in shards
    }  # fmt: skip
    for consumer in consumers.values():
        await consumer.ensure_group()
    await asyncio.to_thread(barrier.wait)

    async def publish(shard: int) -> None:
        producer = StreamProducer(client, shard_stream(FACES, shard), maxlen=10 * messages, wait_replicas=wait)
        for start in range(0, per_shard, BATCH):
            await producer.publish_many(crop(sessions[shard], i) for i in range(start, min(per_shard, start + BATCH)))

    async def consume(shard: int) -> None:
        while handled[shard] < per_shard:
            await consumers[shard].step()

    await asyncio.gather(*(publish(s) for s in shards), *(consume(s) for s in shards))
    await client.aclose()


def _client_process(url: str, shards: list[int], of: int, messages: int, wait: int, barrier: Barrier) -> None:
    asyncio.run(_client(url, shards, of, messages, wait, barrier))


def _measure(url: str, pids: list[int], wait: int, shards: int = SHARDS) -> tuple[float, float]:
    """(messages/s, messages per second of Redis CPU) of one run of ``CLIENTS`` processes on ``url`` over
    ``shards`` shards, each publish waiting for ``wait`` replicas (WAIT)."""
    context = multiprocessing.get_context("spawn")
    per_client = MESSAGES // CLIENTS
    barrier = context.Barrier(CLIENTS + 1)
    clients = [
        context.Process(target=_client_process, args=(url, mine, shards, per_client, wait, barrier))
        for mine in (list(range(i, shards, CLIENTS)) for i in range(CLIENTS))
    ]
    for process in clients:
        process.start()
    barrier.wait(timeout=PATIENCE_S)
    redis_cpu = sum(cpu_s(pid) for pid in pids)
    started = time.perf_counter()
    for process in clients:
        process.join()
        if process.exitcode:
            raise RuntimeError(f"a benchmark client on {url} exited with {process.exitcode}")
    elapsed = time.perf_counter() - started
    redis_cpu = sum(cpu_s(pid) for pid in pids) - redis_cpu
    done = per_client * CLIENTS // shards * shards  # what the clients publish: the same count a shard
    return done / elapsed, done / max(redis_cpu, 1e-9)


def _flush(urls: list[str]) -> None:
    for url in urls:
        with redis.Redis.from_url(url) as client:
            client.flushall()


def shard_balance(sessions: int = BALANCE_SESSIONS, shards: int = SHARDS, seed: int = 1) -> dict:
    """Sessions and entries per shard for ``sessions`` random session ids: max / mean of each. Entries
    weigh each session by an exponential length (mean 1), as listening sessions vary."""
    rng = random.Random(seed)
    per_session = Counter()
    per_entries = Counter()
    for session in _session_ids(sessions, seed):
        shard = shard_of(session, shards)
        per_session[shard] += 1
        per_entries[shard] += rng.expovariate(1.0)
    mean_s, mean_e = sessions / shards, sum(per_entries.values()) / shards
    return {
        "sessions": sessions,
        "shards": shards,
        "sessions_max_over_mean": round(max(per_session.values()) / mean_s, 3),
        "sessions_min_over_mean": round(min(per_session[s] for s in range(shards)) / mean_s, 3),
        "entries_max_over_mean": round(max(per_entries.values()) / mean_e, 3),
    }


def slot_balance(cluster: RedisCluster) -> dict:
    """Slots and logical shards of each master of ``cluster``."""
    from redis.crc import key_slot

    with redis.Redis(port=cluster.nodes[0].port) as client:
        ranges = client.execute_command("CLUSTER", "SLOTS")
    masters: dict[int, list[tuple[int, int]]] = {}
    for start, end, master, *_ in ranges:
        masters.setdefault(int(master[1]), []).append((int(start), int(end)))
    slots = {port: sum(e - s + 1 for s, e in spans) for port, spans in masters.items()}
    shards = Counter(
        port for shard in range(SHARDS) for port, spans in masters.items()
        if any(s <= key_slot(shard_stream(FACES, shard).encode()) <= e for s, e in spans)
    )  # fmt: skip
    return {"slots_per_master": sorted(slots.values()), "shards_per_master": sorted(shards[p] for p in masters)}


def run(redis_url: str) -> dict:
    """``redis_url`` is not used: both backends are started here, side by side."""
    with tempfile.TemporaryDirectory(prefix="emotune-bench-cluster-") as workdir:
        single = RedisServer(free_port(), Path(workdir) / "single", appendonly=False)
        cluster = RedisCluster(Path(workdir) / "cluster", masters=3, replicas=1)
        single.start()
        try:
            cluster.start()
            try:
                nodes = ([n.process.pid for n in cluster.nodes], [n.url for n in cluster.nodes])
                backends = {  # name: URL, Redis processes, nodes to empty after, replicas a publish waits for
                    "single": (single.url, [single.process.pid], [single.url], 0),
                    "single_one_reader": (single.url, [single.process.pid], [single.url], 0),
                    "cluster": (cluster.url, *nodes, 1),
                    "cluster_no_wait": (cluster.url, *nodes, 0),
                }
                rates: dict[str, list[tuple[float, float]]] = {name: [] for name in backends}
                for _ in range(ROUNDS):
                    for name, (url, pids, flush, wait) in backends.items():
                        shards = CLIENTS if name == "single_one_reader" else SHARDS  # a shard, a reader a process
                        rates[name].append(_measure(url, pids, wait, shards))
                        _flush([u for u in flush if _is_master(u)])
                slots = slot_balance(cluster)
            finally:
                cluster.stop()
        finally:
            single.stop()
    result: dict = {"messages": MESSAGES, "clients": CLIENTS, "shards": SHARDS, "rounds": ROUNDS}
    for name, runs in rates.items():
        result[f"{name}_msgs_per_s"] = round(statistics.median(r for r, _ in runs))
        result[f"{name}_msgs_per_redis_cpu_s"] = round(statistics.median(c for _, c in runs))
    result["cluster_over_single"] = round(result["cluster_msgs_per_s"] / result["single_msgs_per_s"], 2)
    result["wait_over_no_wait"] = round(result["cluster_msgs_per_s"] / result["cluster_no_wait_msgs_per_s"], 2)
    result["balance"] = shard_balance()
    result["slots"] = slots
    return result


def _is_master(url: str) -> bool:
    with redis.Redis.from_url(url) as client:
        return client.info("replication")["role"] == "master"


def markdown(r: dict) -> str:
    b, s = r["balance"], r["slots"]
    return "\n".join(
        [
            "## Redis Cluster: the streams on one Redis against 3 masters",
            "",
            f"{r['messages']:,} FaceCrop messages (2.3 KB) published, group-read and acknowledged with the stream "
            f"library, over {r['shards']} logical shards, by {r['clients']} client processes (each its shards' "
            f"producer and consumers, one consumer a shard), median of {r['rounds']} alternating rounds. Both "
            "backends without persistence; the cluster has a replica per master (6 redis-server processes).",
            "",
            "| backend | messages/s | messages per second of Redis CPU |",
            "| --- | ---: | ---: |",
            f"| one Redis | {r['single_msgs_per_s']:,} | {r['single_msgs_per_redis_cpu_s']:,} |",
            f"| one Redis, {r['clients']} shards: one reader a process instead of {r['shards'] // r['clients']} | "
            f"{r['single_one_reader_msgs_per_s']:,} | {r['single_one_reader_msgs_per_redis_cpu_s']:,} |",
            f"| Redis Cluster, 3 masters + 3 replicas (a publish waits for its replica: the default) | "
            f"{r['cluster_msgs_per_s']:,} | {r['cluster_msgs_per_redis_cpu_s']:,} |",
            f"| the same without WAIT (`EMOTUNE_STREAM_WAIT_REPLICAS=0`) | {r['cluster_no_wait_msgs_per_s']:,} | "
            f"{r['cluster_no_wait_msgs_per_redis_cpu_s']:,} |",
            "",
            f"Cluster over one Redis, side by side: {r['cluster_over_single']}x in messages/s; waiting for the "
            f"replica keeps {r['wait_over_no_wait']:.0%} of the cluster's messages/s without. On this 2-core "
            "machine the client processes and the nodes share the same cores, so messages/s says what one "
            "machine does, not what the cluster can: the second column is the figure per core of Redis "
            "(replication included): a machine with a core for Redis (a master, and the replica of another) "
            f"carries about {r['cluster_msgs_per_redis_cpu_s']:,} messages/s of this kind, so N such machines "
            "carry about N times that, as long as the shards spread evenly over the masters (below) and the "
            "clients scale out with them.",
            "",
            f"Shard balance of {b['sessions']:,} random sessions over {b['shards']} shards: max/mean "
            f"{b['sessions_max_over_mean']} sessions a shard (min/mean {b['sessions_min_over_mean']}); weighing "
            f"each session by an exponential length, max/mean {b['entries_max_over_mean']} entries a shard.",
            "",
            f"Slots per master: {s['slots_per_master']}; logical shards per master: {s['shards_per_master']} "
            f"({r['shards']} shards cannot split evenly over 3 masters; with many more shards than masters "
            "the spread stays close, and resharding moves whole shards, so grow the shard count before the "
            "cluster outgrows it).",
        ]
    )
