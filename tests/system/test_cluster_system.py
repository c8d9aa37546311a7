"""The whole system on a Redis Cluster (3 masters, 3 replicas: the ``redis_cluster`` fixture), as processes.

Capture runs three sessions of one user on the looping video, each on a shard that lives on another
master; two inference workers, the recommender and the gateway with a WebSocket subscriber of the user
run with ``redis+cluster://`` URLs (the raw frames keep their own plain Redis). While crops flow, the
master of one session's shard is SIGKILLed and its replica takes over. Afterwards the same checks as the
fault tests (tests/system/faults.py): every crop has exactly one emotion event, nothing is pending in any
group of any shard, the dead letters hold the poison and nothing else, and the subscriber got every
event of its user that the streams hold, each shard's in order, none twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from emotune_common.shards import session_stream, shard_of
from emotune_common.streams import EMOTIONS, FACES

from ..cluster import RedisCluster
from .faults import SESSION, USER, FaultSystem, Subscriber

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@dataclass
class ClusterSystem(FaultSystem):
    """The fault tests' system with the streams and state on a Redis Cluster instead of one Redis."""

    cluster: RedisCluster = field(kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.client.close()
        self.client = redis.RedisCluster(host="127.0.0.1", port=self.cluster.nodes[0].port, socket_timeout=10)

    def env(self, **extra: str) -> dict[str, str]:
        return {**super().env(**extra), "REDIS_URL": self.cluster.url}

    def start_redis(self) -> None:
        """The session's cluster, emptied: the ledger reads every entry of the streams, and tests before this
        one may have left some under the same names."""
        self.cluster.wait_ok()  # a test before may have restarted a node
        for node in self.cluster.masters_now():
            with self.cluster.client(node) as client:
                client.flushall()
        self.frames.start()


def sessions_on_every_master(cluster: RedisCluster, shards: int) -> tuple[str, ...]:
    """The fault tests' session and two more, whose shards lie on the other two masters."""
    chosen, masters = [SESSION], {cluster.master_of(session_stream(FACES, SESSION, shards)).port}
    for n in range(1_000):
        candidate = f"s{n}-cluster"
        master = cluster.master_of(session_stream(FACES, candidate, shards)).port
        if master not in masters:
            chosen.append(candidate)
            masters.add(master)
        if len(masters) == len(cluster.masters_now()):
            break
    return tuple(chosen)


@pytest.fixture(scope="module")
def system(tmp_path_factory, recommender_models, redis_cluster) -> Iterator[ClusterSystem]:
    s = ClusterSystem(tmp_path_factory.mktemp("cluster-system"), recommender_models=recommender_models,
                      cluster=redis_cluster)  # fmt: skip
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_sessions_on_every_master_lose_nothing_through_a_failover(system: ClusterSystem, redis_cluster):
    sessions = sessions_on_every_master(redis_cluster, system.shards)
    assert len(sessions) == 3 and len({shard_of(s, system.shards) for s in sessions}) == 3
    subscriber = Subscriber(system.gateway_url, USER, system.api_key).start()
    victim = redis_cluster.master_of(session_stream(FACES, sessions[1], system.shards))
    replica = redis_cluster.replica_of(victim)
    try:
        system.start_capture(sessions)
        system.wait_new(EMOTIONS, {}, 30)
        system.inject_poison()
        redis_cluster.kill(victim)  # mid-run: its replica takes over the shard of sessions[1]
        redis_cluster.wait_failed_over(victim, replica)
        after = system.last_id(EMOTIONS)
        system.wait_new(EMOTIONS, after, 30)  # the flow goes on over the new master
        system.stop_capture()
        system.settle()
        subscriber.wait_caught_up(system, USER)
        ledger = system.ledger()
        problems = ledger.problems(system.poison) + subscriber.check(ledger, USER)
        down = [p for p in system.services.values() if not p.alive and p.name != "capture"]
        problems += [f"{p.name} died: {p.tail(500)}" for p in down]
        assert not problems, "\n".join(problems) + "\n" + system.logs()
        shards_with_crops = {name for name, _ in ledger.crops}
        assert shards_with_crops == {session_stream(FACES, s, system.shards) for s in sessions}  # each on its own
        assert len(subscriber.snapshot()) >= 60
    finally:
        subscriber.stop()
        if victim.process is None:
            redis_cluster.restart(victim)
        redis_cluster.wait_ok()
