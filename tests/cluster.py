"""A Redis Cluster of private redis-server processes, for the tests of the streams on a cluster.

:class:`RedisCluster` starts 3 masters and a replica of each (``redis-server --cluster-enabled yes``, each
a :class:`~tests.processes.RedisServer` on a free port with its own folder and nodes.conf), joins them with
``redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes``, and waits until every node says
``cluster_state:ok`` and every replica is in sync. A test can SIGKILL a node, wait for its replica to take
over (or for the cluster to be down, when the replica is told not to), start it again on the same port and
files, and wait until the cluster is whole again. Every wait is a condition with PATIENCE_S.

Like tests/processes.py it imports no pytest; the fixture is ``redis_cluster`` in tests/conftest.py.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .processes import PATIENCE_S, RedisServer, free_port, wait_until


@dataclass
class RedisCluster:
    """``masters`` masters with ``replicas`` replicas each, keeping their files under ``workdir``.

    ``node_timeout_ms`` is how long a node may not answer before the others count it as failed (and its
    replica takes over): short, so that a failover in a test takes seconds, and long enough for a busy
    machine not to fail a live node over. With ``appendonly`` a node restarted as a master loads what it
    had (fsync always); without, it comes back empty and must not be a master again before it resyncs.
    """

    workdir: Path
    masters: int = 3
    replicas: int = 1
    appendonly: bool = False
    node_timeout_ms: int = 2000
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The cluster URL of every node (``redis+cluster://``, see emotune_common.redis_client)."""
        return self.url_for()

    def url_for(self, user: str | None = None, password: str | None = None) -> str:
        """The cluster URL with every node as a seed, as ``user`` if given."""
        credentials = f"{user}:{password}@" if user else ""
        return f"redis+cluster://{credentials}" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        """Start the nodes, make them one cluster, wait until it serves every slot with every replica in sync."""
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH (apt-get install redis-tools)")
        for _ in range(self.masters * (1 + self.replicas)):
            port = free_port()
            node = RedisServer(port, self.workdir / f"node-{port}", self.appendonly, extra=(
                # a bus port of its own: the default, port + 10000, may be taken or past 65535
                "--cluster-enabled", "yes", "--cluster-port", str(free_port()), "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms), "--logfile", "redis.log",
            ))  # fmt: skip
            self.nodes.append(node)
        try:
            for node in self.nodes:
                node.start()
            created = subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                capture_output=True, text=True, timeout=PATIENCE_S,
            )  # fmt: skip
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout[-3000:]}{created.stderr}")
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    # -- what the nodes say ----------------------------------------------------------------------------

    def client(self, node: RedisServer) -> redis.Redis:
        """A plain client of one node (close it), for CLUSTER and INFO."""
        return redis.Redis(port=node.port, socket_timeout=5, socket_connect_timeout=2)

    def ask(self, node: RedisServer, *command: str) -> str:
        with self.client(node) as c:
            reply = c.execute_command(*command)
        return reply.decode() if isinstance(reply, bytes) else reply

    def info(self, node: RedisServer, section: str) -> dict[str, str]:
        """``INFO section`` of a node as text fields."""
        with self.client(node) as c:
            return {k: str(v) for k, v in c.info(section).items()}

    def live(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def masters_now(self) -> list[RedisServer]:
        """The live nodes that are masters now (failovers change which)."""
        return [node for node in self.live() if self.info(node, "replication")["role"] == "master"]

    def master_of(self, key: str) -> RedisServer:
        """The live node that serves ``key``'s slot now."""
        slot = int(self.ask(self.live()[0], "CLUSTER", "KEYSLOT", key))
        for node in self.masters_now():
            if self.serves(node, slot):
                return node
        raise RuntimeError(f"no live master serves slot {slot} of {key!r}")

    def serves(self, node: RedisServer, slot: int) -> bool:
        """Whether ``node`` has ``slot`` among its own, by its own line in CLUSTER NODES."""
        for line in self.ask(node, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            if "myself" not in fields[2]:
                continue
            for part in fields[8:]:
                if part.startswith("["):  # a slot being migrated or imported
                    continue
                low, _, high = part.partition("-")
                if int(low) <= slot <= int(high or low):
                    return True
        return False

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A live replica of ``master``."""
        node_id = self.ask(master, "CLUSTER", "MYID")
        for node in self.live():
            if node is not master and self.info(node, "replication")["role"] == "slave":
                with self.client(node) as c:
                    me = next(line for line in c.execute_command("CLUSTER", "NODES").decode().splitlines()
                              if "myself" in line.split()[2])  # fmt: skip
                if me.split()[3] == node_id:
                    return node
        raise RuntimeError(f"master on port {master.port} has no live replica")

    def _whole(self) -> bool:
        """Every node runs and says cluster_state:ok, ``masters`` of them serve slots, every replica is in sync."""
        if len(self.live()) != len(self.nodes):
            return False
        for node in self.nodes:
            if "cluster_state:ok" not in self.ask(node, "CLUSTER", "INFO"):
                return False
            replication = self.info(node, "replication")
            if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                return False
        return len(self.masters_now()) == self.masters

    def wait_ok(self, within: float = PATIENCE_S) -> None:
        wait_until(self._whole, within, "the Redis Cluster to be whole (every node ok, replicas in sync)", every=0.1,
                   detail=self.logs)  # fmt: skip

    def wait_replicated(self, within: float = PATIENCE_S) -> None:
        """Until every replica has every write its master has taken so far (their replication offsets)."""

        def caught_up() -> bool:
            for master in self.masters_now():
                offset = int(self.info(master, "replication")["master_repl_offset"])
                replica = self.replica_of(master)
                if int(self.info(replica, "replication").get("slave_repl_offset", -1)) < offset:
                    return False
            return True

        wait_until(caught_up, within, "every replica to catch up with its master", every=0.05, detail=self.logs)

    # -- faults --------------------------------------------------------------------------------------

    def kill(self, node: RedisServer) -> None:
        """SIGKILL one node: no goodbye to the others, nothing flushed that was not."""
        assert node.process is not None, f"node on port {node.port} is not running"
        node.process.kill()
        node.process.wait(30)
        node.process = None

    def restart(self, node: RedisServer) -> None:
        """Start a stopped node again on its port and files (its nodes.conf: the same node id)."""
        node.start()

    def wait_failed_over(self, old_master: RedisServer, replica: RedisServer, within: float = PATIENCE_S) -> None:
        """Until ``replica`` is a master in place of the killed ``old_master`` and the live nodes are ok."""

        def promoted() -> bool:
            return self.info(replica, "replication")["role"] == "master" and all(
                "cluster_state:ok" in self.ask(node, "CLUSTER", "INFO") for node in self.live()
            )

        wait_until(promoted, within, f"the replica on port {replica.port} to replace port {old_master.port}",
                   every=0.1, detail=self.logs)  # fmt: skip

    def wait_down(self, within: float = PATIENCE_S) -> None:
        """Until the live nodes say cluster_state:fail: some slots have no master (and no replica took over)."""
        wait_until(lambda: all("cluster_state:fail" in self.ask(n, "CLUSTER", "INFO") for n in self.live()), within,
                   "the live nodes to count the cluster as down", every=0.1, detail=self.logs)  # fmt: skip

    def move_slot(self, slot: int, target: RedisServer, pause_s: float = 0.0) -> None:
        """Move ``slot`` to master ``target`` as a resharding does, one key at a time with ``pause_s`` between
        (clients meet the slot half moved: ASK for the keys already gone, TRYAGAIN for commands across both)."""
        source = next(node for node in self.masters_now() if self.serves(node, slot))
        source_id, target_id = self.ask(source, "CLUSTER", "MYID"), self.ask(target, "CLUSTER", "MYID")
        self.ask(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        self.ask(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
        with self.client(source) as c:
            while keys := c.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1):
                c.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
                time.sleep(pause_s)
        for node in (target, source, *(m for m in self.masters_now() if m not in (target, source))):
            self.ask(node, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)

    def add_user(self, user: str, password: str, *rules: str) -> None:
        """``ACL SETUSER user on >password rules...`` on every node (ACLs are per node, never propagated)."""
        for node in self.live():
            with self.client(node) as c:
                c.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", *rules)

    def logs(self, chars: int = 1500) -> str:
        parts = []
        for node in self.nodes:
            log = node.workdir / "redis.log"
            text = log.read_text(errors="replace")[-chars:] if log.exists() else ""
            parts.append(f"--- node {node.port} ({'up' if node.process else 'down'}) ---\n{text}")
        return "\n".join(parts)
