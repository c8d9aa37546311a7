"""Subscription fan-out: WebSocket subscribers on one gateway process, fed 100 emotion events/s.

- Fan-out: 200 subscribers, 10 on each of 20 users, on ``/v1/users/{uid}/events/ws?types=emotion``;
  a publisher writes 100 EmotionEvent entries/s to emotune:emotions (each to its session's shard, as
  inference does: the hub reads every shard), round-robin over the users, so
  each subscriber receives 5 events/s and the gateway sends 1,000 WebSocket messages/s.
- Baseline, same gateway process, same publisher, just before: 1 subscriber whose user gets all
  100 events/s (100 deliveries/s). The hub reads, decodes and renders the same 100 entries/s in
  both runs, so the difference is the fan-out itself: 199 more connections, 900 more sends/s.

Latency is per delivered event at the client: receive time minus the event's creation time
(``make_header`` at publish time, sent as ``data.captured_at_us``), one host clock. Every delivery
is checked (each subscriber gets exactly its user's sequence numbers); any loss fails the run.
Before both, all 200 subscriptions are opened at once and the refusals counted (then closed); the
measured runs open them 50 at a time.
Gateway CPU is utime + stime of its process (/proc) over the run, as % of one core.

Real processes: a private redis-server, ``python -m emotune_gateway serve`` (uvicorn's defaults:
permessage-deflate is negotiated, as browsers do), the publisher (``python -m bench.fanout
publish ...``) and the subscribers (this process, asyncio + the ``websockets`` client).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.metrics import cpu_s, metric, rss_mb
from bench.sizes import size
from tests.processes import RedisServer, Service, free_port, python_module, spawn, wait_until

USERS = size("BENCH_FANOUT_USERS", 20, 2)
PER_USER = size("BENCH_FANOUT_PER_USER", 10, 2)
RATE = 100.0  # events/s, all users together
SECONDS = size("BENCH_FANOUT_SECONDS", 30.0, 2.0)
BASELINE_SECONDS = size("BENCH_FANOUT_BASELINE_SECONDS", 20.0, 2.0)
CONNECT_CONCURRENCY = 50  # handshakes at once: the gateway's Redis pool holds 100 connections (see _burst)
DRAIN_S = 10.0  # after the last event is published, how long deliveries may still take


async def _until(predicate, within: float, what: str) -> None:
    await asyncio.to_thread(wait_until, predicate, within, what)


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


# ---- the publisher (its own process) ----------------------------------------------------------


def publish(url: str, start_at: float, rate: float, seconds: float, users: list[str]) -> dict:
    """XADD ``rate`` EmotionEvents a second from ``start_at`` (epoch s), round-robin over ``users``;
    frame_number is the sequence number, so subscribers can tell exactly what they missed."""
    import redis

    from emotune.v1 import messages_pb2
    from emotune_common.codec import encode
    from emotune_common.ids import make_header
    from emotune_common.shards import session_stream
    from emotune_common.streams import EMOTIONS
    from tests.processes import stream_shards

    client = redis.Redis.from_url(url)
    shards = stream_shards()  # the gateway's: it gets this environment
    streams = {uid: session_stream(EMOTIONS, f"fanout-{uid}", shards) for uid in users}  # a user's one session
    total, late = round(rate * seconds), 0.0
    probabilities = [0.05, 0.01, 0.04, 0.7, 0.05, 0.1, 0.05]
    while time.time() < start_at:
        time.sleep(max(0.0, min(0.05, start_at - time.time())))
    for i in range(total):
        due = start_at + i / rate
        if (delay := due - time.time()) > 0:
            time.sleep(delay)
        late = max(late, time.time() - due)
        uid = users[i % len(users)]
        event = messages_pb2.EmotionEvent(
            header=make_header(f"fanout-{uid}", uid), crop_id=f"crop{i}", probabilities=probabilities,
            label=messages_pb2.HAPPY, confidence=0.7, model_name="bench", model_version=1,
            box=messages_pb2.BoundingBox(x=10, y=20, width=64, height=64), frame_number=i,
        )  # fmt: skip
        client.xadd(streams[uid], encode(event), maxlen=100_000, approximate=True)
    return {"published": total, "seconds": round(time.time() - start_at, 2), "max_late_ms": round(late * 1000, 2)}


# ---- the subscribers (this process) -----------------------------------------------------------


@dataclass(eq=False)
class Subscriber:
    user_id: str
    uri: str
    received: list[tuple[int, str]] = field(default_factory=list)  # (receive time in us, message text)
    close_code: int | None = None
    extensions: str = ""
    task: asyncio.Task | None = None
    ws: object = None

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(self.uri, max_queue=None, open_timeout=30)
        self.extensions = ",".join(type(e).__name__ for e in self.ws.protocol.extensions)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        received, clock = self.received, time.time_ns
        try:
            async for message in self.ws:
                received.append((clock() // 1000, message))  # parse later: keep the receive loop minimal
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self.task


async def _phase(url: str, gateway: Service, port: int, subs: list[Subscriber], users: list[str],
                 seconds: float) -> dict:  # fmt: skip
    """Connect ``subs``, publish ``RATE`` events/s over ``users`` for ``seconds``, collect and check."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def open_one(s: Subscriber) -> None:
        async with gate:
            await s.open()

    await asyncio.gather(*(open_one(s) for s in subs))
    await _until(lambda: metric(port, "emotune_gateway_subscribers") == len(subs), 30, f"{len(subs)} subscriptions")
    rss_connected = rss_mb(gateway.process.pid)
    start_at = time.time() + 1.5
    publisher = spawn(
        "publisher",
        python_module("bench.fanout", "publish", url, repr(start_at), repr(RATE), repr(seconds), *users),
        stdout=subprocess.PIPE,
        text=True,
    ).process
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu0, client_cpu0, wall0 = cpu_s(gateway.process.pid), time.process_time(), time.time()
    total = round(RATE * seconds)
    per_user = {u: [i for i in range(total) if users[i % len(users)] == u] for u in users}
    expected = sum(len(per_user[s.user_id]) for s in subs)
    stdout, _ = await asyncio.to_thread(publisher.communicate, timeout=seconds + 60)
    if publisher.returncode != 0:
        raise RuntimeError(f"publisher failed (exit {publisher.returncode})")
    published = json.loads(stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + DRAIN_S
    while sum(len(s.received) for s in subs) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # polling a count the readers fill: nothing to wake on
    cpu, client_cpu, wall = cpu_s(gateway.process.pid) - cpu0, time.process_time() - client_cpu0, time.time() - wall0
    rss_end = rss_mb(gateway.process.pid)
    await asyncio.gather(*(s.close() for s in subs))
    await _until(lambda: metric(port, "emotune_gateway_subscribers") == 0, 30, "unsubscribing")

    latencies, lost, extra, closed = [], 0, 0, 0
    for s in subs:
        numbers = []
        for at_us, text in s.received:
            event = json.loads(text)
            latencies.append((at_us - event["data"]["captured_at_us"]) / 1000)
            numbers.append(event["data"]["frame_number"])
        want = per_user[s.user_id]
        lost += len(set(want) - set(numbers))
        extra += len(numbers) - len(set(numbers) & set(want))
        closed += s.close_code not in (None, 1000)  # 1000: our own close; 1013: cut off as too slow
    received = sum(len(s.received) for s in subs)
    ms = np.array(latencies) if latencies else np.array([float("nan")])
    return {
        "subscribers": len(subs),
        "users": len({s.user_id for s in subs}),
        "seconds": seconds,
        "events_per_s": RATE,
        "events_per_subscriber_per_s": round(RATE / len(users), 2),
        "deliveries_per_s": round(RATE / len(users) * len(subs), 1),
        "published": published["published"],
        "publisher_max_late_ms": published["max_late_ms"],
        "deliveries_expected": expected,
        "deliveries_received": received,
        "lost": lost,
        "unexpected": extra,
        "closed_by_gateway": closed,
        "complete": lost == 0 and extra == 0 and closed == 0 and received == expected,
        **{f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)},
        "max_ms": round(float(ms.max()), 2),
        "wall_s": round(wall, 2),
        "gateway_cpu_s": round(cpu, 2),
        "gateway_cpu_pct": round(100 * cpu / wall, 1),
        "gateway_cpu_us_per_delivery": round(1e6 * cpu / max(received, 1), 1),
        "client_cpu_pct": round(100 * client_cpu / wall, 1),
        "gateway_rss_connected_mb": rss_connected,
        "gateway_rss_end_mb": rss_end,
        "websocket_extensions": sorted({s.extensions for s in subs}),
    }


async def _burst(subs: list[Subscriber], port: int) -> dict:
    """Open every subscription at once (as after a gateway restart), count the refusals, close them all."""
    outcomes = await asyncio.gather(*(s.open() for s in subs), return_exceptions=True)
    refused: dict[str, int] = {}
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            response = getattr(outcome, "response", None)
            why = f"HTTP {response.status_code}" if response is not None else type(outcome).__name__
            refused[why] = refused.get(why, 0) + 1
    await asyncio.gather(*(s.close() for s in subs if s.task is not None))
    await _until(lambda: metric(port, "emotune_gateway_subscribers") == 0, 30, "unsubscribing")
    return {"attempted": len(subs), "refused": sum(refused.values()), "refused_by": refused}


async def _run(url: str, gateway: Service, port: int, keys: dict[str, str]) -> dict:
    def uri(uid: str) -> str:
        return f"ws://127.0.0.1:{port}/v1/users/{uid}/events/ws?key={keys[uid]}&types=emotion"

    users = sorted(keys)
    rss_idle = rss_mb(gateway.process.pid)
    burst = await _burst([Subscriber(u, uri(u)) for u in users for _ in range(PER_USER)], port)
    one = await _phase(url, gateway, port, [Subscriber(users[0], uri(users[0]))], users[:1], BASELINE_SECONDS)
    many = [Subscriber(u, uri(u)) for u in users for _ in range(PER_USER)]
    fanout = await _phase(url, gateway, port, many, users, SECONDS)
    cpu_one, cpu_many = one["gateway_cpu_s"] / one["wall_s"], fanout["gateway_cpu_s"] / fanout["wall_s"]
    extra_deliveries = fanout["deliveries_received"] / fanout["wall_s"] - one["deliveries_received"] / one["wall_s"]
    marginal_us = 1e6 * (cpu_many - cpu_one) / extra_deliveries if extra_deliveries > 0 else None
    return {
        "gateway_rss_idle_mb": rss_idle,
        "burst_connect": burst,
        "baseline": one,
        "fanout": fanout,
        "ratio_p99": round(fanout["p99_ms"] / one["p99_ms"], 2),
        "ratio_cpu": round(fanout["gateway_cpu_pct"] / one["gateway_cpu_pct"], 2),
        "ratio_cpu_per_delivery": round(fanout["gateway_cpu_us_per_delivery"] / one["gateway_cpu_us_per_delivery"], 2),
        "marginal_cpu_us_per_delivery": round(marginal_us, 1) if marginal_us else None,
        "deliveries_per_core_s": round(1e6 / marginal_us) if marginal_us else None,
        "complete": one["complete"] and fanout["complete"],
    }


def run(redis_url: str) -> dict:
    """Ignores ``redis_url``: the publisher writes emotune:emotions, so a private redis-server it is."""
    workdir = Path(tempfile.mkdtemp(prefix="emotune-bench-"))
    port = free_port()
    redis_server = RedisServer(free_port(), workdir / "redis", appendonly=False)
    gateway = None
    try:
        redis_server.start()
        url = redis_server.url
        keys = asyncio.run(accounts(url, [f"fan{n:02d}" for n in range(USERS)]))
        gateway = spawn("gateway", python_module("emotune_gateway", "serve"),
                        {"REDIS_URL": url, "EMOTUNE_GATEWAY_HOST": "127.0.0.1", "EMOTUNE_GATEWAY_PORT": str(port),
                         "EMOTUNE_RATE_LIMIT": "100000/minute", "EMOTUNE_LOG_LEVEL": "WARNING"},
                        log=workdir / "gateway.log")  # fmt: skip
        wait_until(lambda: gateway.check() or metric(port, "emotune_gateway_subscribers") is not None, 60,
                   "the gateway", every=0.1, detail=gateway.tail)  # fmt: skip
        try:
            result = asyncio.run(_run(url, gateway, port, keys))
        except Exception as e:
            raise RuntimeError(f"{e!r}; the gateway's log ends: {gateway.tail()}") from e
    finally:
        if gateway is not None:
            gateway.stop()
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result["users"], result["subscribers_per_user"] = USERS, PER_USER
    result["cpus"] = os.cpu_count()
    return result


def markdown(r: dict) -> str:
    one, many, burst = r["baseline"], r["fanout"], r["burst_connect"]

    def row(name: str, p: dict) -> str:
        return (f"| {name} | {p['deliveries_per_s']:,.0f} | "
                f"{p['deliveries_received']:,} / {p['deliveries_expected']:,} | "
                f"{p['p50_ms']} / {p['p95_ms']} / {p['p99_ms']} / {p['max_ms']} ms | {p['gateway_cpu_pct']}% | "
                f"{p['gateway_cpu_us_per_delivery']} us |")  # fmt: skip

    verdict = (
        "Every delivery arrived, in both runs (none lost, none cut off)."
        if r["complete"]
        else f"FAILED: {one['lost'] + many['lost']} deliveries lost, "
        f"{one['closed_by_gateway'] + many['closed_by_gateway']} subscribers closed by the gateway."
    )
    return "\n".join([
        "## Subscription fan-out: WebSocket subscribers on one gateway process",
        "",
        f"A publisher process writes {many['events_per_s']:.0f} EmotionEvents/s to emotune:emotions for "
        f"{many['seconds']:.0f} s, round-robin over {r['users']} users; {many['subscribers']} WebSocket subscribers "
        f"({r['subscribers_per_user']} a user, `types=emotion`) in one client process each receive "
        f"{many['events_per_subscriber_per_s']:g} events/s: {many['deliveries_per_s']:,.0f} deliveries/s. Baseline, "
        f"same gateway process just before: 1 subscriber whose user gets all {one['events_per_s']:.0f} events/s, "
        f"for {one['seconds']:.0f} s. Latency: event creation at the publisher to receipt at the client; gateway CPU "
        "as % of one core.",
        "",
        "| run | deliveries/s | received / expected | latency p50 / p95 / p99 / max | gateway CPU | CPU per delivery |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        row("1 subscriber, all events", one),
        row(f"{many['subscribers']} subscribers, {r['users']} users x {r['subscribers_per_user']}", many),
        "",
        f"Ratio, {many['subscribers']} subscribers over 1, side by side in one run: p99 latency {r['ratio_p99']}x, "
        f"gateway CPU {r['ratio_cpu']}x, CPU per delivery {r['ratio_cpu_per_delivery']}x. Each extra delivery costs "
        f"{r['marginal_cpu_us_per_delivery']} us of gateway CPU: about {r['deliveries_per_core_s']:,} deliveries/s "
        "would fill its one core (one event loop).",
        "",
        f"Gateway RSS: {r['gateway_rss_idle_mb']} MB idle, {many['gateway_rss_connected_mb']} MB with "
        f"{many['subscribers']} subscribers, {many['gateway_rss_end_mb']} MB after the run. The client process used "
        f"{many['client_cpu_pct']}% of a core. {verdict}",
        "",
        f"Connecting all {burst['attempted']} at once first (as after a gateway restart): {burst['refused']} refused"
        + (f" ({', '.join(f'{n} {why}' for why, n in burst['refused_by'].items())}); "
           "the runs above connect 50 at a time." if burst["refused"] else "."),
    ])  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] != ["publish"]:
        sys.exit("usage: python -m bench.fanout publish REDIS_URL START_AT RATE SECONDS USER...")
    _, _, url_, start_, rate_, seconds_, *users_ = sys.argv
    print(json.dumps(publish(url_, float(start_), float(rate_), float(seconds_), users_)))
