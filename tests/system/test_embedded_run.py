"""The embedded run under supervisord: a service that dies comes back, one that keeps crashing is given up
on loudly while the rest goes on, the inference workers scale out, and `make run` fetches the data it
reads before it starts anything.

The crash test is the issue's own: `make run` with two inference workers and a looping video session,
each process SIGKILLed in turn (Redis too); each comes back by itself and answers again, and once the
session stops every crop has exactly one emotion event (the fault tests' ledger, over this run's Redis).
"""

from __future__ import annotations

import configparser
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from emotune_common.keys import session_key
from emotune_common.streams import EMOTIONS, FACES
from scripts import fetch_data, run_local

from ..common.helpers import crops
from ..conftest import DATA_DIR, ROOT, free_port
from ..fakes.data_sources import ArchiveServer, archive_path, source_archives
from ..processes import PATIENCE_S, wait_grpc, wait_http, wait_until
from .faults import FaultSystem

#: A Procfile of one service that says it runs. A test waits for that line before its Ctrl-C: supervisord signals
#: a process group, which a process it spawned a moment ago may not have made yet (the signal would be lost, and
#: supervisord would wait its stopwaitsecs before it kills).
IDLE = f"idle: {sys.executable} -c \"import time; print('idling', flush=True); time.sleep(600)\"\n"


@dataclass
class EmbeddedRun:
    """scripts/run_local.py (`make run`) as a process, its output collected line by line."""

    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, env: dict[str, str]) -> EmbeddedRun:
        process = subprocess.Popen([sys.executable, "scripts/run_local.py"], cwd=ROOT, env=env, text=True,
                                   start_new_session=True, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)  # fmt: skip
        run = cls(process)
        threading.Thread(target=lambda: run.lines.extend(process.stdout), daemon=True).start()
        return run

    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, within: float = PATIENCE_S) -> re.Match:
        """The first match of ``pattern`` in the output; TimeoutError (with the output) if it never comes."""
        return wait_until(lambda: re.search(pattern, self.output(), re.M), within, repr(pattern),
                          every=0.2, detail=lambda: self.output()[-6000:])  # fmt: skip

    def supervisorctl(self, *args: str) -> str:
        config = self.wait_for(r"supervisorctl -c (\S+)").group(1)
        done = subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-c", config, *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        return done.stdout

    def states(self) -> dict[str, str]:
        """Each process's state, by the name supervisorctl gives it (``inference:inference-0``)."""
        return dict(line.split()[:2] for line in self.supervisorctl("status").splitlines() if line.strip())

    def pid(self, name: str) -> int:
        """The process's pid, 0 while it is not running."""
        value = self.supervisorctl("pid", name).strip()
        return int(value) if value.isdigit() else 0

    def interrupt(self, within: float = PATIENCE_S) -> int:
        """What Ctrl-C in its terminal does; returns the exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(within)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.interrupt()


@pytest.fixture
def embedded_runs() -> Iterator[Callable[[dict[str, str]], EmbeddedRun]]:
    """Start runs; each still running at the end is stopped with a Ctrl-C."""
    started: list[EmbeddedRun] = []

    def start(env: dict[str, str]) -> EmbeddedRun:
        started.append(EmbeddedRun.start(env))
        return started[-1]

    yield start
    for run in started:
        run.kill()


def environ(pid: int) -> dict[str, str]:
    """The environment a process was started with."""
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(100):
        first = free_port()
        with socket.socket() as probe:
            if all(probe.connect_ex(("127.0.0.1", first + i)) != 0 for i in range(count)) and first + count < 65536:
                return first
    raise RuntimeError(f"no {count} consecutive free ports")


def run_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    env.pop("MODEL_SERVER", None)
    return env


# -- the configuration ---------------------------------------------------------------------------------


def test_the_inference_workers_scale_out_each_with_its_own_metrics_port_and_consumer_name(tmp_path):
    entries = run_local.parse_procfile((ROOT / "Procfile").read_text())
    programs = [run_local.Program("redis", "redis-server", 10), *run_local.service_programs(entries, 4, 9100)]
    config = configparser.RawConfigParser()
    config.read_string(run_local.supervisor_config(programs, tmp_path, "secret", colour=False))
    workers = [f"program:inference-{n}" for n in range(4)]
    assert config.get("group:inference", "programs") == ",".join(w.removeprefix("program:") for w in workers)
    services = [s for s in config.sections() if s.startswith("program:") and s != "program:redis"]
    assert len(services) == len(entries) + 3
    environments = [config.get(s, "environment") for s in services]
    ports = [re.search(r'EMOTUNE_METRICS_PORT="(\d+)"', e).group(1) for e in environments]
    names = [re.search(r'EMOTUNE_CONSUMER_NAME="([^"]+)"', e).group(1) for e in environments]
    assert len(set(ports)) == len(ports) == len(set(names)), environments
    for section in services:
        assert config.get(section, "autorestart") == "true" and config.get(section, "stopasgroup") == "true"
        assert int(config.get(section, "priority")) > int(config.get("program:redis", "priority"))  # Redis first


# -- a crash loop, and the data ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_service_that_keeps_crashing_is_given_up_on_loudly_and_the_rest_goes_on(tmp_path, embedded_runs):
    url = f"redis://127.0.0.1:{free_port()}/0"
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"worker: {sys.executable} -m tests.common.echo_worker {url} faces emotions inference w1\n"
        f"broken: {sys.executable} -c \"import sys; print('no data here'); sys.exit(3)\"\n"
    )
    run = embedded_runs(run_env(REDIS_URL=url, EMOTUNE_FRAMES_REDIS_URL=url, EMOTUNE_PROCFILE=str(procfile),
                                EMOTUNE_RUN_DIR=str(tmp_path / "run")))  # fmt: skip
    run.wait_for(r"!!! emotune: broken KEEPS CRASHING and is no longer restarted")
    tries = re.findall(r"^\S+ broken +\| no data here$", run.output(), re.M)  # each line with its name in front
    assert len(tries) == run_local.START_RETRIES + 1  # started, tried again, given up on
    assert run.states()["broken"] == "FATAL"
    client = redis.Redis.from_url(url)
    for crop in crops(5):
        client.xadd("faces", {"type": "emotune.v1.FaceCrop", "pb": crop.SerializeToString()})
    wait_until(lambda: client.xlen("emotions") == 5, PATIENCE_S, "the worker to go on handling crops")
    assert run.interrupt() == 0
    wait_until(lambda: not answers(client), PATIENCE_S, "Redis to stop after Ctrl-C")


def answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="module")
def archives() -> dict[str, bytes]:
    return source_archives(DATA_DIR)


def test_make_run_fetches_the_missing_data_first_and_says_where(tmp_path, redis_url, archives, embedded_runs):
    data = tmp_path / "data"
    procfile = tmp_path / "Procfile"
    procfile.write_text(IDLE)
    with ArchiveServer(archives) as server:
        run = embedded_runs(run_env(REDIS_URL=redis_url, EMOTUNE_FRAMES_REDIS_URL=redis_url,
                                    EMOTUNE_PROCFILE=str(procfile), EMOTUNE_DATA_DIR=str(data),
                                    EMOTUNE_DATA_BASE_URL=server.url))  # fmt: skip
        run.wait_for(r"idle +\| idling")
    output = run.output()
    needed = sorted(f.target for f in fetch_data.FILES if f.dataset in run_local.RUN_DATASETS)
    said = f"fetched {len(needed)} files of music, video into {data}"
    assert said in output and output.index(said) < output.index("starting idle"), output
    assert sorted(str(p.relative_to(data)) for p in data.glob("*/*")) == needed
    assert run.interrupt() == 0


def test_make_run_starts_nothing_when_the_data_cannot_be_fetched(tmp_path, archives):
    procfile = tmp_path / "Procfile"
    procfile.write_text(IDLE)
    url = f"redis://127.0.0.1:{free_port()}/0"
    lastfm = archive_path(fetch_data.LASTFM)
    with ArchiveServer(archives, missing={lastfm}) as server:
        done = subprocess.run([sys.executable, "scripts/run_local.py"], cwd=ROOT, capture_output=True, text=True,
                              timeout=PATIENCE_S, env=run_env(REDIS_URL=url, EMOTUNE_PROCFILE=str(procfile),
                                                          EMOTUNE_DATA_DIR=str(tmp_path / "data"),
                                                          EMOTUNE_DATA_BASE_URL=server.url))  # fmt: skip
    assert done.returncode != 0
    assert f"{server.url}{lastfm}: HTTP 404" in done.stderr and "nothing was started" in done.stderr, done.stderr
    assert "starting" not in done.stdout
    assert not answers(redis.Redis.from_url(url))
    assert not any(p.is_file() for p in (tmp_path / "data").rglob("*"))


# -- SIGKILL, each in turn -------------------------------------------------------------------------------

USER = "local"  # the user make run creates, whose key it prints
#: The model server last: it takes longest to come back, by when the others have run long enough to be RUNNING.
ORDER = ("redis", "redis-frames", "capture", "inference:inference-0", "inference:inference-1", "recommender",
         "gateway", "modelserver")  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_each_service_killed_in_turn_comes_back_and_every_crop_gets_exactly_one_event(
    tmp_path, recommender_models, embedded_runs
):
    system = FaultSystem(tmp_path, recommender_models=recommender_models)  # its ports, views and ledger
    metrics = free_ports(6)
    run = embedded_runs(run_env(**system.env(
        EMOTUNE_FRAMES_REDIS_URL=system.frames.url, EMOTUNE_RUN_DIR=str(tmp_path / "run"),
        EMOTUNE_STREAM_CLAIM_IDLE_MS="30000",  # make run's own: a restarted worker takes back what it held
        EMOTUNE_MODELSERVER_PORT=str(system.model_port), EMOTUNE_RECOMMENDER_PORT=str(system.recommender_port),
        EMOTUNE_RECOMMENDER_ADDR=f"127.0.0.1:{system.recommender_port}",
        EMOTUNE_RECOMMENDER_MODEL_DIR=str(recommender_models), EMOTUNE_GATEWAY_HOST="127.0.0.1",
        EMOTUNE_GATEWAY_PORT=str(system.gateway_port), EMOTUNE_PUBLIC_URL=system.gateway_url,
        EMOTUNE_INFERENCE_WORKERS="2", EMOTUNE_INFERENCE_BATCH_SIZE="8", EMOTUNE_METRICS_PORT=str(metrics),
        EMOTUNE_CAPTURE_LEASE_MS="3000",  # a restarted capture takes the session back 3 s after its death
    )))  # fmt: skip
    try:
        system.api_key = run.wait_for(r"emotune: open http://\S+/#key=(\S+)").group(1)
        wait_http(f"{system.gateway_url}/readyz", PATIENCE_S, detail=run.output)
        created, session = system.api("POST", f"/v1/users/{USER}/sessions",
                                      {"source": "video:short_hamilton_clip.mp4?loop=1&fps=10"})  # fmt: skip
        assert created == 201, run.output()[-4000:]
        system.wait_new(EMOTIONS, "0-0", 20, within=PATIENCE_S)
        # a worker may still be starting, or being restarted by the supervisor (its output says why)
        pids = {name: wait_until(lambda n=name: run.pid(n), PATIENCE_S, f"{name} running", detail=run.output)
                for name in ORDER if "inference" in name}  # fmt: skip
        ops = {name: int(environ(pid)["EMOTUNE_METRICS_PORT"]) for name, pid in pids.items()}
        assert len(set(ops.values())) == 2, ops

        def back(name: str) -> None:
            """Wait until the restarted ``name`` does its work again."""
            if name.startswith("redis"):
                client = system.client if name == "redis" else system.frames_client
                wait_until(client.ping, PATIENCE_S, f"{name} to answer")
            elif name == "modelserver":
                wait_grpc(system.model_server, PATIENCE_S, detail=run.output)
            elif name == "capture":
                system.wait_new(FACES, system.last_id(FACES), 5, within=PATIENCE_S)
            elif name in ops:
                wait_http(f"http://127.0.0.1:{ops[name]}/healthz", PATIENCE_S, detail=run.output)
            elif name == "recommender":
                wait_grpc(f"127.0.0.1:{system.recommender_port}", PATIENCE_S, detail=run.output)
            else:
                wait_http(f"{system.gateway_url}/readyz", PATIENCE_S, detail=run.output)

        for name in ORDER:
            pid = wait_until(lambda n=name: run.pid(n), PATIENCE_S, f"{name} to run")
            events = system.last_id(EMOTIONS)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda n=name, p=pid: run.pid(n) not in (0, p), PATIENCE_S, f"{name} to be started again")
            back(name)
            system.wait_new(EMOTIONS, events, 5, within=PATIENCE_S)  # and the session's events flow again
        assert f"exited: {ORDER[-1]} (terminated by SIGKILL; not expected)" in run.output()
        wait_until(lambda: set(run.states().values()) == {"RUNNING"}, PATIENCE_S, "every process to be RUNNING")

        stopped, _ = system.api("DELETE", f"/v1/users/{USER}/sessions/{session['id']}")
        assert stopped in (200, 204)
        record = session_key(USER, session["id"])
        wait_until(lambda: system.client.hget(record, "capture_state") == b"ended", PATIENCE_S, "the session to end")
        ledger, _ = system.settle(within=PATIENCE_S)
        assert len(ledger.crops) > 100, "too few crops to tell anything"
        problems = ledger.problems(poison=[])
        assert not problems, "\n".join(problems)
        pids = [run.pid(name) for name in ORDER]
    finally:
        status = run.interrupt()
        system.client.close()
        system.frames_client.close()
    assert status == 0, run.output()[-4000:]
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "a service outlived the Ctrl-C"
