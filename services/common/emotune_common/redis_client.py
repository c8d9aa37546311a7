"""Redis connections with the retry policy every service uses: one plain Redis, or a Redis Cluster.

A URL names a cluster by its scheme: ``redis+cluster://`` (``rediss+cluster://`` with TLS), with one or
more seed nodes, ``redis+cluster://user:password@host1:7000,host2:7001``. Any other URL is one Redis, as
before. Why the scheme, and not a setting such as ``EMOTUNE_REDIS_CLUSTER=true``: the kind of server
belongs to each URL, not to the process (a service talks to the main Redis and to the frames Redis, and
the main one may be a cluster while the frames one is a single server that keeps nothing on disk); the
URL travels whole through every environment variable, Secret and subprocess that carries it; and a tool
that does not know the scheme refuses the URL at once ("must specify one of the following schemes")
instead of talking to one node of a cluster as if it were all of it, where every other key would answer
MOVED. redis-py has no scheme of its own for a cluster (``RedisCluster.from_url`` takes ``redis://``), so
:func:`connect` turns ``+cluster`` back into the plain scheme for it, and passes the other seeds as
startup nodes: a client can start while some of the nodes are down. User name and password (Redis ACL)
come from the URL as for one Redis, and are used on every node.

A cluster's ACL users also need ``+cluster|slots`` and ``+command`` besides their own commands, on every
node (ACLs are per node): redis-py asks for the slots map and the command table when it starts and whenever
the cluster's layout changes. Without ``+cluster|slots`` redis-py says "Cluster mode is not enabled on this
node"; without ``+command`` it raises NoPermissionError.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterError,
    ConnectionError,
    RedisClusterException,
    TimeoutError,
    TryAgainError,
)

#: What :func:`connect` returns: one Redis or a cluster; the stream library takes either.
Client = aioredis.Redis | RedisCluster

#: Errors after which a command may succeed on a fresh connection: Redis went away or is loading. On a
#: cluster also: CLUSTERDOWN (some slots without a master: a failover under way, nodes still joining) and
#: redis-py's own retries of it given up (ClusterError), TRYAGAIN (keys of a slot being moved), MOVED or ASK
#: still answered after redis-py followed them (a resharding), and RedisClusterException, which redis-py
#: raises when no seed node answers or the nodes do not cover every slot yet (a cluster down or half up);
#: it cannot be told apart by type from redis-py's other complaints, so these are retried as well, each
#: with a log line, rather than stopping a consumer whose entries would then wait for a restart anyway.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError, TimeoutError, BusyLoadingError, OSError, ClusterError, TryAgainError, AskError,
    RedisClusterException,
)  # fmt: skip

#: What a cluster answers while a slot moves between masters (a resharding): ASK for a key already moved,
#: MOVED once the slot is the other's, TRYAGAIN for one command on keys split between the two. The command
#: runs once the slot has moved; one Redis never answers them.
SLOT_MOVING_ERRORS: tuple[type[Exception], ...] = (AskError, TryAgainError)

#: URL schemes that name a Redis Cluster, and the scheme redis-py is given for each.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


async def node_of(client: Client, key: str) -> dict[str, ClusterNode]:
    """The keyword that sends a keyless command to the node that serves ``key`` now (on a cluster; on one
    Redis there is only the one). WAIT needs it: it counts the replicas that have the writes of its own
    connection, so in a pipeline it must follow them down the same node's connection."""
    if not isinstance(client, RedisCluster):
        return {}
    await client.initialize()  # a no-op once the map of slots is known
    return {"target_nodes": client.get_node_from_key(key)}


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def connect(url: str, max_connections: int = 200, **kwargs) -> Client:
    """An asyncio client for ``url`` that retries a failed command a few times over about a second.

    Longer outages surface as :data:`TRANSIENT_ERRORS`; the stream consumer backs off and carries on.
    Responses are bytes (protobuf payloads are binary). Past ``max_connections`` commands wait for a
    free connection (up to 10 s) instead of failing: a burst of requests queues rather than errs.
    A cluster URL gives a :class:`RedisCluster` (see :func:`connect_cluster`).
    """
    if is_cluster_url(url):
        return connect_cluster(url, max_connections, **kwargs)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3),
        retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
        health_check_interval=10,
        socket_connect_timeout=2,
        **kwargs,
    )
    return aioredis.Redis(connection_pool=pool)


def connect_cluster(url: str, max_connections: int = 200, **kwargs) -> RedisCluster:
    """A cluster client for ``redis+cluster://[user:password@]host:port[,host:port...][/0][?options]``.

    The same retry policy as one Redis, per node; ``max_connections`` is per node too, and past it a
    command fails (redis-py's cluster client has no blocking pool) with MaxConnectionsError, a
    ConnectionError. On MOVED redis-py updates its slots map and follows; after a connection error, a
    CLUSTERDOWN or a failover it asks the nodes for the map again. Nothing connects until the first command.
    """
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise ValueError(f"not a Redis Cluster URL (redis+cluster:// or rediss+cluster://): {url!r}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    seeds = [seed for seed in hosts.split(",") if seed]
    if not seeds:
        raise ValueError(f"a Redis Cluster URL names at least one node: {url!r}")
    first = urlunsplit((CLUSTER_SCHEMES[parts.scheme], f"{credentials}@{seeds[0]}" if credentials else seeds[0],
                        parts.path, parts.query, parts.fragment))  # fmt: skip
    others = [ClusterNode(*_host_port(seed)) for seed in seeds[1:]]
    return _Cluster.from_url(
        first,
        startup_nodes=others or None,
        max_connections=max_connections,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3),
        retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
        health_check_interval=10,
        socket_connect_timeout=2,
        **kwargs,
    )


class _Cluster(RedisCluster):
    """redis-py's cluster client, with two guards against its connection races (redis-py 8.1).

    On every new map of the cluster (its first, and after a failover or a MOVED), redis-py recycles the
    connections it has, lazily; when many tasks send commands meanwhile (a service's consumers, one a
    shard), a connection can be closed under the command using it. The command then fails with a
    ConnectionError, which the services ride out, or with AttributeError ("'NoneType' object has no
    attribute 'writelines'"), which would stop them. So:

    - the map is fetched before the first command goes out, the others waiting: measured with 16
      readers starting together on a 3-master cluster, 0 errors in 3 runs instead of 2-6 a run;
    - an AttributeError from inside redis-py's connection handling is raised as the ConnectionError it
      stands for (the connection opens again on its next use), for commands and pipelines alike.
    """

    async def execute_command(self, *args, **kwargs):
        if self._initialize:
            await self.initialize()  # under redis-py's own lock: one task fetches, the others wait
        try:
            return await super().execute_command(*args, **kwargs)
        except AttributeError as e:
            raise _connection_lost(e) from e

    def pipeline(self, transaction: bool | None = None, shard_hint: None = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _ClusterPipeline(self, transaction)


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, *args, **kwargs):
        try:
            return await super().execute(*args, **kwargs)
        except AttributeError as e:
            raise _connection_lost(e) from e


def _connection_lost(error: AttributeError) -> ConnectionError:
    """The ConnectionError that a connection closed under a command stands for (see :class:`_Cluster`);
    any other AttributeError is a bug, and is raised as it is."""
    if "'NoneType' object has no attribute" not in str(error):
        raise error
    return ConnectionError(f"a cluster connection was closed under its command (redis-py): {error}")


def _host_port(seed: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; port 6379 when left out) of one seed node."""
    parsed = urlsplit(f"//{seed}")
    if parsed.hostname is None:
        raise ValueError(f"not a host:port: {seed!r}")
    return parsed.hostname, parsed.port or 6379


def connect_or_reuse(url: str, client: aioredis.Redis, client_url: str) -> aioredis.Redis:
    """``client`` when ``url`` is its URL, else a new client for ``url``.

    For a second Redis that may be the first (the frames Redis, by default REDIS_URL's): close the
    result only when it ``is not client``.
    """
    return client if url == client_url else connect(url)
