"""The services as real processes, for the benchmarks: start them, wait for them, read their
metrics and /proc figures, stop them. Shared by pipeline.py, fanout.py and load.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import redis

from bench import free_port

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def spawn(args: list[str], env: dict | None = None, log: Path | None = None, **kw) -> subprocess.Popen:
    """A process in the repository root with the environment plus ``env``; output to ``log`` (else dropped)."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, "EMOTUNE_LOG_LEVEL": "WARNING", **(env or {})},
                            stdout=kw.pop("stdout", out), stderr=out, **kw)  # fmt: skip


def stop(*processes: subprocess.Popen) -> None:
    """SIGTERM to all, then wait for each (killed after 30 s)."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def wait_for(predicate: Callable[[], object], within: float, what: str = "benchmark step") -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {within:.0f} s")
        time.sleep(0.05)


def metric_samples(port: int, name: str) -> list[tuple[dict[str, str], float]] | None:
    """The samples ``(labels, value)`` of one metric at ``http://127.0.0.1:<port>/metrics/``; None when
    nothing answers there (the process is not up yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/", timeout=2).read().decode()
    except OSError:
        return None
    return [(s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name]  # fmt: skip


def metric(port: int, name: str) -> float | None:
    """One metric summed over its label sets; None when nothing answers or the metric has no sample yet."""
    samples = metric_samples(port, name)
    return sum(value for _, value in samples) if samples else None


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def start_redis(workdir: Path, appendonly: bool = False) -> tuple[subprocess.Popen, str]:
    """A private redis-server on a free port, answering; returns it and its URL. With ``appendonly``:
    AOF on with fsync every second, as deployed (docker-compose.yml, deploy/k8s)."""
    port = free_port()
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if appendonly else ["--appendonly", "no"]
    process = spawn([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                     "--save", "", *persistence, "--dir", str(workdir)])  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.BusyLoadingError):
            return False

    try:
        wait_for(answers, 30, "redis-server answering")
    except BaseException:
        stop(process)
        raise
    finally:
        client.close()
    return process, url


def start_model_server(env: dict | None = None, log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """The model server over the committed models/ on a free port, serving; returns it and its target."""
    import grpc

    port = free_port()
    process = spawn([sys.executable, "-m", "emotune_modelserver"],
                    {"EMOTUNE_MODELSERVER_PORT": str(port), **(env or {})}, log=log)  # fmt: skip
    target = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(target) as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
    except BaseException:
        stop(process)
        raise
    return process, target


def start_workers(client: redis.Redis, env: dict, count: int, log_dir: Path | None = None) -> list[subprocess.Popen]:
    """Start ``count`` inference workers (consumers w0, w1, ...) and wait until their consumer group exists;
    with ``log_dir``, each writes its output to inference-w<i>.log there."""
    pool = [spawn([sys.executable, "-m", "emotune_inference"], {**env, "EMOTUNE_CONSUMER_NAME": f"w{i}"},
                  log=log_dir / f"inference-w{i}.log" if log_dir else None) for i in range(count)]  # fmt: skip
    wait_for(lambda: client.exists("emotune:faces") and client.xinfo_groups("emotune:faces"), 60, "the inference group")
    return pool


async def accounts(url: str, user_ids: list[str]) -> dict[str, str]:
    """Create the users and an API key for each, as the gateway's admin command does; user id -> key."""
    from emotune_common.redis_client import connect
    from emotune_gateway import accounts as gateway_accounts

    client = connect(url)
    try:
        keys = {}
        for uid in user_ids:
            await gateway_accounts.create_user(client, uid)
            keys[uid] = await gateway_accounts.create_key(client, uid)
        return keys
    finally:
        await client.aclose()
