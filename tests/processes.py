"""emotune's services as real processes, for the tests and the benchmarks: the one place that starts them,
waits for them, reads their logs and stops them.

- :class:`Service`: one process (name, command line, environment, log; ``alive``, ``tail()``, ``stop()``),
  started by :func:`spawn`; :func:`stop` ends several (SIGTERM, then SIGKILL); :func:`wait_http` and
  :func:`wait_grpc` wait until one answers, :func:`wait_until` for anything else.
- :class:`RedisServer`: a private redis-server on a free port, with or without AOF, that can be restarted
  (tests/cluster.py makes a Redis Cluster of them).
- :func:`start_model_server`: the model server over a copy of the committed emotion CNN.
- :class:`System`: the services of a whole emotune system over two private Redis servers, as deployed:
  the main one and one for raw frames that keeps nothing on disk. The browser tests, the fault tests and
  the load benchmark build on it and add what is their own.
- The streams over their shards (emotune_common.shards), read as a test or a benchmark reads them:
  :func:`stream_shards`, :func:`shard_entries` (every entry of every shard), :func:`shard_length` and
  :func:`group_totals` (a consumer group's pending entries, lag... summed over the shards).

Why here: the tests already shared this module, and the benchmarks start the same processes (the load
test even runs bench/load.py's code), so bench/ imports it as ``tests.processes``. It imports neither
pytest nor tests/conftest.py, so ``python -m bench`` needs nothing of the test runner.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import grpc
import redis
from redis.cluster import ClusterNode

from emotune_common.redis_client import is_cluster_url
from emotune_common.settings import StreamSettings
from emotune_common.shards import shard_streams

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
MODEL = "emotion_cnn"
#: What :func:`wait_until` takes for "not yet": a Redis that is away (restarted by a test, loading its files).
REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
#: How long a test waits for a condition before it fails. Generous on purpose: a wait ends as soon as its
#: condition holds, so this costs nothing where the code is right, and CI machines may be slower and busier.
PATIENCE_S = float(os.environ.get("EMOTUNE_TEST_PATIENCE_S", 300))
T = TypeVar("T")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port nobody listens on, for a server to start on, and none this process handed out before: the
    server given one a moment ago may not have bound it yet (a cluster's 6 nodes and their 6 bus ports)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_until(predicate: Callable[[], T], within: float, what: str, every: float = 0.05,
               detail: Callable[[], str] | None = None) -> T:  # fmt: skip
    """The first truthy value of ``predicate``, asked every ``every`` s (Redis being away counts as not yet);
    TimeoutError after ``within`` s, with ``detail()`` (the logs, say) in its message."""
    deadline = time.monotonic() + within
    while True:
        try:
            value = predicate()
        except REDIS_AWAY:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {within:.0f} s waiting for {what}" + (f":\n{detail()}" if detail else "")
            )
        time.sleep(every)


# -- the streams over their shards -------------------------------------------------------------------


def sync_client(url: str) -> redis.Redis | redis.RedisCluster:
    """A synchronous client of ``url``: one Redis, or a Redis Cluster (``redis+cluster://host:port,...``, as
    emotune_common.redis_client reads it), for the tests' and benchmarks' own reads."""
    if not is_cluster_url(url):
        return redis.Redis.from_url(url)
    hosts = urlsplit(url).netloc.rpartition("@")[2].split(",")
    return redis.RedisCluster(startup_nodes=[ClusterNode(host, int(port)) for host, _, port in
                                             (h.rpartition(":") for h in hosts)])  # fmt: skip


def stream_shards() -> int:
    """The shards of every stream (``EMOTUNE_STREAM_SHARDS``, 16 by default), as the services started from
    this process's environment have them."""
    return StreamSettings().shards


def shard_entries(client: redis.Redis, stream: str, shards: int | None = None, min: str = "-", max: str = "+",
                  ) -> list[tuple[str, bytes, dict]]:  # fmt: skip
    """Every entry of every shard of ``stream`` (``emotune:faces``...) between ``min`` and ``max``: (the shard's
    stream name, entry id, fields), shard by shard, each shard in order. Entry ids are comparable within one
    shard only, so an entry is known by its shard's name and its id together."""
    return [
        (name, entry_id, fields)
        for name in shard_streams(stream, shards or stream_shards())
        for entry_id, fields in client.xrange(name, min=min, max=max)
    ]


def shard_length(client: redis.Redis, stream: str, shards: int | None = None) -> int:
    """The entries of every shard of ``stream`` together."""
    return sum(client.xlen(name) for name in shard_streams(stream, shards or stream_shards()))


def group_totals(client: redis.Redis, stream: str, group: str, shards: int | None = None) -> dict[str, int] | None:
    """Consumer group ``group`` over every shard of ``stream``: its ``pending`` entries, ``lag``, ``consumers``
    (the most on one shard) and the ``shards`` it reads, summed; None while no shard has the group yet. A
    shard whose lag Redis cannot tell (after a trim or a deletion) counts as lag 0 here, and in ``unknown_lag``."""
    totals = {"pending": 0, "lag": 0, "consumers": 0, "shards": 0, "unknown_lag": 0}
    for name in shard_streams(stream, shards or stream_shards()):
        if not client.exists(name):
            continue
        for row in client.xinfo_groups(name):
            if row["name"] in (group, group.encode()):
                totals["shards"] += 1
                totals["pending"] += int(row["pending"])
                totals["lag"] += int(row.get("lag") or 0)
                totals["unknown_lag"] += row.get("lag") is None
                totals["consumers"] = max(totals["consumers"], int(row["consumers"]))
    return totals if totals["shards"] else None


# -- processes ---------------------------------------------------------------------------------------


def python_module(module: str, *args: str) -> list[str]:
    """The command line of ``python -m module args`` with this interpreter (the virtualenv's)."""
    return [sys.executable, "-m", module, *args]


@dataclass
class Service:
    """One process of emotune (or of a test or benchmark beside it) and what it was started with."""

    name: str
    process: subprocess.Popen
    log: Path | None  # None: its output is dropped
    args: list[str]
    env: dict[str, str]
    ops: int = 0  # the port of its /metrics, /healthz and /readyz (0: none)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        """The end of its log."""
        try:
            return self.log.read_text(errors="replace")[-chars:] if self.log else ""
        except OSError:
            return ""

    def check(self) -> None:
        """RuntimeError, with the end of its log, when it has exited."""
        if not self.alive:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        stop(self)


def spawn(name: str, args: list[str], env: Mapping[str, str] | None = None, log: Path | None = None, ops: int = 0,
          **popen) -> Service:  # fmt: skip
    """Start ``args`` in the repository root with this process's environment plus ``env``. Its output (stdout
    too, unless ``popen`` redirects it) is appended to ``log`` after a line that says when it started, so the
    starts of a restarted service share one log; without ``log`` it is dropped."""
    full = {**os.environ, **(env or {})}
    with open(log, "a") if log else contextlib.nullcontext(subprocess.DEVNULL) as out:
        if log:
            print(f"--- start {time.strftime('%H:%M:%S')} ---", file=out, flush=True)
        process = subprocess.Popen(args, cwd=ROOT, env=full, stdout=popen.pop("stdout", out), stderr=out, **popen)
    return Service(name, process, log, args, full, ops)


def terminate(*processes: subprocess.Popen, within: float = 30) -> None:
    """SIGTERM to every one still running, then wait for each; one not gone within ``within`` s is killed."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(within)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def stop(*services: Service) -> None:
    """:func:`terminate` the services' processes, all at once."""
    terminate(*(s.process for s in services))


def wait_http(url: str, within: float, service: Service | None = None, detail: Callable[[], str] | None = None) -> None:
    """Wait until ``url`` answers 200 while ``service`` runs (RuntimeError with its log when it exits)."""

    def answers() -> bool:
        if service is not None:
            service.check()
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    what = f"{service.name if service else 'a server'} at {url}"
    wait_until(answers, within, what, every=0.1, detail=detail or (service.tail if service else None))


def wait_grpc(target: str, within: float, service: Service | None = None,
              detail: Callable[[], str] | None = None) -> float:  # fmt: skip
    """Wait until a gRPC server answers at ``target`` while ``service`` runs; returns the moment it did.
    A fresh channel each try: one channel's reconnect backoff grows to seconds while a server starts (TensorFlow
    takes 15-40 s to load), and would notice it that much later."""

    def answers() -> bool:
        if service is not None:
            service.check()
        with grpc.insecure_channel(target) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=0.3)
                return True
            except grpc.FutureTimeoutError:
                return False

    what = f"{service.name if service else 'a gRPC server'} at {target}"
    wait_until(answers, within, what, detail=detail or (service.tail if service else None))
    return time.monotonic()


# -- Redis and the model server ----------------------------------------------------------------------


@dataclass
class RedisServer:
    """A redis-server of its own on ``port``, keeping its files in ``workdir`` (never RDB snapshots): it can be
    stopped and started again on the same port and files, and with AOF on it then loads what it had."""

    port: int
    workdir: Path
    appendonly: bool
    appendfsync: str = "always"  # with AOF; "everysec" is how it is deployed (docker-compose.yml, deploy/k8s)
    extra: tuple[str, ...] = ()  # more redis-server options (a cluster node's, say)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        aof = ["--appendonly", "yes", "--appendfsync", self.appendfsync] if self.appendonly else ["--appendonly", "no"]
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir), "--save", "", *aof,
                *self.extra]  # fmt: skip
        self.process = process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {process.returncode}")
            return bool(client.ping())

        try:
            wait_until(answers, PATIENCE_S, f"redis-server on port {self.port}")
        except BaseException:
            self.stop()
            raise
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        self.process = None


def committed_versions() -> list[int]:
    return sorted(int(p.name) for p in (MODELS / MODEL).iterdir() if p.name.isdigit())


def latest_model_dir() -> Path:
    versions = committed_versions()
    assert versions, "no SavedModel version committed under models/emotion_cnn/"
    return MODELS / MODEL / str(versions[-1])


@dataclass
class ModelServer:
    """The model server's process, its gRPC port and the models it serves (under ``base``)."""

    service: Service
    port: int
    base: Path

    @property
    def metrics_port(self) -> int:
        return self.service.ops

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)

    def stop(self) -> None:
        self.service.stop()


def start_model_server(workdir: Path, batching: str | None = None, poll_seconds: float = 0.2,
                       versions: tuple[int, ...] = (1,), port: int | None = None,
                       env: Mapping[str, str] | None = None, committed: bool = False,
                       config: str | None = None) -> ModelServer:  # fmt: skip
    """A model server over a private copy of models/ in ``workdir`` (so a test may add versions to it), once it
    answers; ``env`` adds to its environment.

    Each of ``versions`` is a copy of the latest committed version, or with ``committed`` of the committed
    version of that number; ``config`` replaces models.config's text (to serve several versions, say)."""
    base = workdir / "models"
    (base / MODEL).mkdir(parents=True)
    (base / "models.config").write_text(config or (MODELS / "models.config").read_text())
    (base / "batching.config").write_text(batching or (MODELS / "batching.config").read_text())
    for version in versions:
        shutil.copytree(MODELS / MODEL / str(version) if committed else latest_model_dir(), base / MODEL / str(version))
    port, metrics_port = port or free_port(), free_port()
    service = spawn("modelserver", python_module("emotune_modelserver"), {
        "EMOTUNE_MODEL_CONFIG_FILE": str(base / "models.config"),
        "EMOTUNE_BATCHING_PARAMETERS_FILE": str(base / "batching.config"),
        "EMOTUNE_MODELSERVER_PORT": str(port),
        "EMOTUNE_METRICS_PORT": str(metrics_port),
        "EMOTUNE_POLL_SECONDS": str(poll_seconds),
        **(env or {}),
    }, log=workdir / "modelserver.log", ops=metrics_port)  # fmt: skip
    server = ModelServer(service, port, base)
    try:
        wait_grpc(server.target, PATIENCE_S, service)  # 15 s here, over 40 s beside another heavy job
    except BaseException:
        server.stop()
        raise
    return server


# -- a whole system ----------------------------------------------------------------------------------


@dataclass
class System:
    """The services of one emotune system as processes, by name, each with its log in ``workdir``.

    They run over two private Redis servers, as deployed: ``redis`` for the streams and state (AOF if
    ``appendonly``) and ``frames`` for the raw uploaded frames alone, which keeps nothing on disk (``--save ""
    --appendonly no``): capture and the gateway get it as EMOTUNE_FRAMES_REDIS_URL. ``start_redis()`` starts
    both; each ``start_<service>()`` starts one service (its wait is the caller's), ``stop()`` ends it all.
    Subclasses choose which services run, in what order, with what settings.
    """

    workdir: Path
    model_server: str = field(default="", kw_only=True)  # the model server's target, for the inference workers
    recommender_models: Path | None = field(default=None, kw_only=True)  # None: it trains one at its first start
    appendonly: bool = field(default=False, kw_only=True)
    appendfsync: str = field(default="always", kw_only=True)
    gateway_port: int = field(default_factory=free_port, kw_only=True)
    recommender_port: int = field(default_factory=free_port, kw_only=True)
    services: dict[str, Service] = field(default_factory=dict, kw_only=True)
    redis: RedisServer = field(init=False)
    frames: RedisServer = field(init=False)

    def __post_init__(self) -> None:
        self.redis = RedisServer(free_port(), self.workdir / "redis", self.appendonly, self.appendfsync)
        self.frames = RedisServer(free_port(), self.workdir / "redis-frames", appendonly=False)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a service: this process's, the main Redis, warnings and worse logged, ``extra``."""
        return {**os.environ, "REDIS_URL": self.redis.url, "EMOTUNE_LOG_LEVEL": "WARNING", **extra}

    def start_redis(self) -> None:
        self.redis.start()
        self.frames.start()

    def spawn(self, name: str, args: list[str], env: dict[str, str], ops: int = 0) -> Service:
        self.services[name] = spawn(name, args, env, log=self.workdir / f"{name}.log", ops=ops)
        return self.services[name]

    def start_worker(self, name: str, **env: str) -> Service:
        """An inference worker (its consumer name is the host and pid unless ``env`` names one)."""
        ops = free_port()
        return self.spawn(name, python_module("emotune_inference"), self.env(
            MODEL_SERVER=self.model_server, EMOTUNE_METRICS_PORT=str(ops), **env,
        ), ops)  # fmt: skip

    def start_recommender(self, **env: str) -> Service:
        models = self.recommender_models or self.workdir / "recommender-models"
        return self.spawn("recommender", python_module("emotune_recommender", "serve"), self.env(
            EMOTUNE_RECOMMENDER_PORT=str(self.recommender_port), EMOTUNE_RECOMMENDER_MODEL_DIR=str(models), **env,
        ))  # fmt: skip

    def start_gateway(self, **env: str) -> Service:
        return self.spawn("gateway", python_module("emotune_gateway", "serve"), self.env(
            EMOTUNE_GATEWAY_HOST="127.0.0.1", EMOTUNE_GATEWAY_PORT=str(self.gateway_port),
            EMOTUNE_PUBLIC_URL=self.gateway_url, EMOTUNE_RECOMMENDER_ADDR=f"127.0.0.1:{self.recommender_port}",
            EMOTUNE_FRAMES_REDIS_URL=self.frames.url, **env,
        ), self.gateway_port)  # fmt: skip

    def start_capture(self, name: str = "capture", **env: str) -> Service:
        ops = free_port()
        return self.spawn(name, python_module("emotune_capture", "serve"), self.env(
            EMOTUNE_FRAMES_REDIS_URL=self.frames.url, EMOTUNE_METRICS_PORT=str(ops), **env,
        ), ops)  # fmt: skip

    def wait_http(self, name: str, path: str, within: float) -> None:
        """Wait until service ``name`` answers 200 at ``path`` of its ops port (the gateway's: its own)."""
        service = self.services[name]
        wait_http(f"http://127.0.0.1:{service.ops}{path}", within, service, detail=self.logs)

    def wait_grpc(self, port: int, within: float, name: str | None = None) -> float:
        """Wait until a gRPC server answers on ``port`` (while service ``name`` runs); returns the moment it did."""
        return wait_grpc(f"127.0.0.1:{port}", within, self.services[name] if name else None, detail=self.logs)

    def wait_recommender(self, within: float) -> None:
        self.wait_grpc(self.recommender_port, within, "recommender")

    def check(self) -> None:
        """RuntimeError when a service has exited."""
        for service in self.services.values():
            service.check()

    def create_user(self, user_id: str) -> str:
        """A user and their API key, with the gateway's admin command."""
        done = subprocess.run(python_module("emotune_gateway", "users", "create", user_id), cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    def logs(self, chars: int = 2000) -> str:
        return "\n".join(f"--- {s.name} (exit {s.process.poll()}) ---\n{s.tail(chars)}" for s in self.services.values())

    def stop(self) -> None:
        stop(*self.services.values())
        self.redis.stop()
        self.frames.stop()
