"""Redis with a user per service (deploy/redis/users.acl.template, rendered by render-acl.sh as the compose
file does), and the frames Redis with its own users (frames-users.acl.template): each service's real
operations work as its own user, what a service does not need it cannot touch, and raw frames never reach
a disk."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
from fastapi.testclient import TestClient

from emotune.v1 import messages_pb2
from emotune_capture.detector import FaceDetector
from emotune_capture.uploads import upload_handler
from emotune_common.consumer import Outcome, StreamConsumer
from emotune_common.ids import derived_header, make_header
from emotune_common.keys import CAPTURE_SESSIONS, api_key_index, capture_lease, session_key, user_key
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import connect
from emotune_common.settings import StreamSettings
from emotune_common.shards import session_stream, shard_stream
from emotune_common.streams import EMOTIONS, FACES, FEEDBACK, FRAMES, RECOMMENDATIONS, dead_letter_stream, stats_key
from emotune_gateway.app import create_app
from emotune_gateway.settings import GatewaySettings

from ..common.helpers import crops, wait_for
from ..conftest import DATA_DIR, ROOT, free_port
from ..processes import PATIENCE_S, stream_shards

TEMPLATE = ROOT / "deploy" / "redis" / "users.acl.template"
FRAMES_TEMPLATE = ROOT / "deploy" / "redis" / "frames-users.acl.template"
RENDER = ROOT / "deploy" / "redis" / "render-acl.sh"
SERVICES = ("capture", "inference", "recommender", "gateway")
#: The test's passwords, as the environment gives them (URL-safe, as .env.example asks).
PASSWORDS = {"REDIS_PASSWORD": "admin-pw", **{f"REDIS_{s.upper()}_PASSWORD": f"{s}-pw-{s[::-1]}" for s in SERVICES}}
PHOTO = (DATA_DIR / "images" / "obama.jpg").read_bytes()
SID = "0123456789abcdef0123456789abcdef"  # a session id as the gateway makes them (32 hex digits)
#: The streams as the services name them: one shard of each (emotune:{s3}:faces...); the users' key patterns
#: (emotune:{s*}:faces) take every shard alike.
SHARD = 3
S_FRAMES, S_FACES, S_EMOTIONS, S_RECOMMENDATIONS, S_FEEDBACK = (
    shard_stream(stream, SHARD) for stream in (FRAMES, FACES, EMOTIONS, RECOMMENDATIONS, FEEDBACK)
)


def render(env: dict[str, str], template: Path = TEMPLATE) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(RENDER), str(template)], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=30)  # fmt: skip


@dataclass
class AclRedis:
    port: int
    process: subprocess.Popen
    dir: Path

    def url(self, user: str) -> str:
        if user == "default":
            return f"redis://default:{PASSWORDS['REDIS_PASSWORD']}@127.0.0.1:{self.port}/0"
        return f"redis://{user}:{PASSWORDS[f'REDIS_{user.upper()}_PASSWORD']}@127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(self.url("default"))


@contextlib.contextmanager
def start_acl_redis(folder: Path, template: Path, persistence: list[str]) -> Iterator[AclRedis]:
    """A redis-server with the users of ``template`` rendered, as the compose file starts it."""
    folder.mkdir()
    rendered = render(PASSWORDS, template)
    assert rendered.returncode == 0, rendered.stderr
    acl = folder.parent / f"{folder.name}.acl"  # beside its data folder, which must hold only what Redis wrote
    acl.write_text(rendered.stdout)
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH (apt-get install redis-server)")
    log = folder.parent / f"{folder.name}.log"
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                                *persistence, "--aclfile", str(acl), "--logfile", str(log)])  # fmt: skip
    server = AclRedis(port, process, folder)
    client = server.admin()
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    client.close()
    yield server
    process.terminate()
    process.wait(10)


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    """The main Redis, with its append-only file on, as in docker-compose.yml."""
    with start_acl_redis(tmp_path / "redis", TEMPLATE, ["--appendonly", "yes", "--appendfsync", "always"]) as r:
        yield r


@pytest.fixture
def frames_redis(tmp_path: Path) -> Iterator[AclRedis]:
    """The frames Redis: nothing on disk, as in docker-compose.yml."""
    with start_acl_redis(tmp_path / "redis-frames", FRAMES_TEMPLATE, ["--save", "", "--appendonly", "no"]) as r:
        yield r


def test_the_acl_file_holds_only_hashes_and_needs_every_password():
    rendered = render(PASSWORDS)
    assert rendered.returncode == 0, rendered.stderr
    for password in PASSWORDS.values():
        assert password not in rendered.stdout
        assert "#" + hashlib.sha256(password.encode()).hexdigest() in rendered.stdout
    lines = rendered.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["default", *SERVICES]  # comments gone, continuations joined
    frames = render(PASSWORDS, FRAMES_TEMPLATE)
    assert [line.split()[1] for line in frames.stdout.splitlines()] == ["default", "capture", "gateway"]
    for name in PASSWORDS:
        missing = render({k: v for k, v in PASSWORDS.items() if k != name})
        assert missing.returncode != 0 and f"{name} is not set" in missing.stderr


def test_the_default_user_is_the_administrator_and_needs_its_password(acl_redis):
    anonymous = redis.Redis(port=acl_redis.port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    wrong = redis.Redis(port=acl_redis.port, username="default", password="nope")
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    admin = acl_redis.admin()
    assert admin.acl_whoami() == "default" and admin.config_get("appendonly")  # everything
    for client in (anonymous, wrong, admin):
        client.close()


def echo(out: StreamProducer):
    async def handle(batch):
        events = [messages_pb2.EmotionEvent(header=derived_header(d.message.header), crop_id=d.message.header.id)
                  for d in batch]  # fmt: skip
        return Outcome(publish=[(out, e) for e in events])

    return handle


#: Who writes each consumed stream, who reads it (group), and what the reader writes.
FLOWS = [
    ("gateway", S_FRAMES, "capture", S_FACES),
    ("capture", S_FACES, "inference", S_EMOTIONS),
    ("inference", S_EMOTIONS, "recommender", S_RECOMMENDATIONS),
    ("gateway", S_FEEDBACK, "recommender", S_RECOMMENDATIONS),
]


@pytest.mark.parametrize(("writer", "stream", "reader", "output"), FLOWS, ids=[f[1] for f in FLOWS])
async def test_each_service_runs_its_streams_as_its_own_user(acl_redis, frames_redis, writer, stream, reader, output):
    """Publishing with trims, a consumer group with a dead letter, de-duplication, and the expiry of the
    input, its dead letters and the output: the stream library's every command, as the services' users.
    Frames are in the frames Redis, and capture writes their crops to the main one."""
    source = frames_redis if stream == S_FRAMES else acl_redis
    writer_redis, reader_redis = connect(source.url(writer)), connect(source.url(reader))
    output_redis = connect(acl_redis.url(reader)) if stream == S_FRAMES else reader_redis
    settings = StreamSettings(batch_size=10, block_ms=50, claim_idle_ms=200, max_deliveries=1, retention_s=1)
    if stream == S_FRAMES:  # capture's real handler, on real photos
        messages = [messages_pb2.Frame(header=make_header("s1", "alice"), image=PHOTO, frame_number=i)
                    for i in range(3)]  # fmt: skip
        handler = upload_handler(FaceDetector(), StreamProducer(output_redis, output, 2, retention_s=1))
    else:
        messages = crops(6)
        handler = echo(StreamProducer(output_redis, output, 2, retention_s=1))  # slack 1: a trim every publish
    await StreamProducer(writer_redis, stream, 2, retention_s=1).publish_many(messages)
    source.admin().xadd(stream, {"type": "emotune.v1.FaceCrop", "pb": b"\x08"})  # a poison entry
    consumer = StreamConsumer(reader_redis, stream, reader, handler, settings=settings, expire_every_s=3600,
                              message_type=type(messages[0]))  # fmt: skip
    dlq = dead_letter_stream(stream)
    admin, output_admin = connect(source.url("default")), connect(acl_redis.url("default"))
    await _run_until_handled(consumer, admin, stream, reader)
    assert await output_admin.xlen(output) >= 1
    await asyncio.sleep(1.1)
    lengths = [await admin.xlen(stream), await admin.xlen(dlq), await output_admin.xlen(output)]
    assert await consumer.expire() == sum(lengths) > 0  # every one of them aged out: the script ran as `reader`
    assert [await admin.xlen(stream), await admin.xlen(dlq), await output_admin.xlen(output)] == [0, 0, 0]
    for client in {writer_redis, reader_redis, output_redis, admin, output_admin}:
        await client.aclose()


async def _run_until_handled(consumer: StreamConsumer, admin, stream: str, reader: str) -> None:
    """Run ``consumer`` until its poison entry is dead-lettered and nothing of ``stream`` is pending, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await wait_for(lambda: _at_least(admin, dead_letter_stream(stream), 1), PATIENCE_S,
                       "the poison entry dead-lettered")  # fmt: skip
        await wait_for(lambda: _no_pending(admin, stream, reader), PATIENCE_S, "every entry handled")
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)


async def _at_least(redis_client, stream: str, n: int) -> bool:
    return await redis_client.xlen(stream) >= n


async def _no_pending(redis_client, stream: str, group: str) -> bool:
    groups = await redis_client.xinfo_groups(stream)
    return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0


def _refused(client: redis.Redis, *command) -> bool:
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError:
        return True
    return False


def test_a_service_cannot_touch_what_is_not_its_own(acl_redis, frames_redis):
    admin, frames_admin = acl_redis.admin(), frames_redis.admin()
    account, spotify = user_key("alice", "account"), user_key("alice", "spotify")
    record, mood = session_key("alice", SID), session_key("alice", SID, "mood")
    admin.hset(account, "name", "Alice")
    admin.hset(spotify, "token", "secret-token")
    admin.set(api_key_index("d" * 64), "alice")
    admin.hset(record, mapping={"id": SID, "user_id": "alice", "source": "upload"})
    admin.hset(mood, "mood", "happy")
    admin.xadd(S_FACES, {"type": "x", "pb": "y"})
    frames_admin.xadd(S_FRAMES, {"type": "x", "pb": "y"})
    clients = {s: redis.Redis.from_url(acl_redis.url(s)) for s in SERVICES}
    frames_clients = {s: redis.Redis.from_url(frames_redis.url(s)) for s in ("capture", "gateway")}
    everyone_refused = [
        ("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST"),
        ("SHUTDOWN", "NOSAVE"), ("SCRIPT", "FLUSH"), ("FUNCTION", "FLUSH"), ("SUBSCRIBE", "x"),
        ("EVAL", "return 1", "0"), ("GET", "some:other:key"), ("SET", "emotune:anything", "1"),
    ]  # fmt: skip
    refused = {
        "capture": [
            ("HGETALL", account),
            ("HGET", spotify, "token"),
            ("GET", api_key_index("d" * 64)),
            ("HGETALL", mood),
            ("XRANGE", S_EMOTIONS, "-", "+"),
            ("XADD", S_EMOTIONS, "*", "a", "b"),
            ("XRANGE", S_FRAMES, "-", "+"),  # frames are in the frames Redis only
            ("XADD", S_FRAMES, "*", "a", "b"),
            ("XREADGROUP", "GROUP", "capture", "c", "STREAMS", S_FRAMES, ">"),
            ("XDEL", S_FACES, "0-1"),
            ("HSET", account, "name", "Mallory"),
            ("SCAN", "0"),
        ],
        "inference": [
            ("HGETALL", account),
            ("HGETALL", record),
            ("GET", api_key_index("d" * 64)),
            ("XRANGE", S_FRAMES, "-", "+"),
            ("XADD", S_RECOMMENDATIONS, "*", "a", "b"),
            ("HGETALL", mood),
            ("HGETALL", CAPTURE_SESSIONS),
            ("DEL", S_FACES),
        ],
        "recommender": [
            ("HGETALL", account),
            ("HGET", spotify, "token"),
            ("GET", api_key_index("d" * 64)),
            ("HGETALL", record),
            ("XRANGE", S_FRAMES, "-", "+"),
            ("XRANGE", S_FACES, "-", "+"),
            ("XADD", S_FRAMES, "*", "a", "b"),
            ("DEL", S_EMOTIONS),
            ("HGETALL", CAPTURE_SESSIONS),
        ],
        "gateway": [
            ("XGROUP", "DESTROY", S_FACES, "inference"),
            ("XREADGROUP", "GROUP", "g", "c", "STREAMS", S_FACES, ">"),
            ("XADD", S_FRAMES, "*", "a", "b"),  # frames are in the frames Redis only
            ("XRANGE", S_FRAMES, "-", "+"),
            ("DEL", S_FACES),
            ("XTRIM", S_FACES, "MAXLEN", "0"),
            ("EVAL", "return redis.call('FLUSHALL')", "0"),
            ("RENAME", account, "emotune:user:mallory:account"),
        ],
    }
    for service, commands in refused.items():
        for command in [*commands, *everyone_refused]:
            assert _refused(clients[service], *command), f"{service} may run {command}"
    frames_refused = {  # the frames Redis: frames only, and no consumer group for the gateway
        "capture": [("XADD", S_FACES, "*", "a", "b"), ("XDEL", S_FRAMES, "0-1"), ("DEL", S_FRAMES),
                    ("HGETALL", account)],
        "gateway": [("XREADGROUP", "GROUP", "capture", "c", "STREAMS", S_FRAMES, ">"), ("DEL", S_FRAMES),
                    ("XADD", S_FACES, "*", "a", "b"), ("HGETALL", account)],
    }  # fmt: skip
    for service, commands in frames_refused.items():
        for command in [*commands, *everyone_refused]:
            assert _refused(frames_clients[service], *command), f"{service} may run {command} on the frames Redis"
    for service in ("inference", "recommender"):  # no user there at all
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(frames_redis.url(service)).ping()
    # what each does need, on the same keys
    assert clients["capture"].hgetall(record)[b"source"] == b"upload"  # its status script reads session records
    assert clients["recommender"].hgetall(mood) == {b"mood": b"happy"}
    assert clients["gateway"].hget(spotify, "token") == b"secret-token"
    assert frames_clients["gateway"].xrange(S_FRAMES) and frames_clients["capture"].xrange(S_FRAMES)
    assert admin.hget(account, "name") == b"Alice" and admin.exists(S_FACES) and frames_admin.exists(S_FRAMES)
    for client in (*clients.values(), *frames_clients.values(), admin, frames_admin):
        client.close()


# -- the whole system, every service as its own user ----------------------------------------------------


def start(module: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip


def refusals(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "no permissions" in line or "NOPERM" in line]


@pytest.mark.slow
@pytest.mark.timeout(900)  # every service started, a dozen waits: 2 minutes on a quiet machine, over 5 on a busy one
def test_the_whole_system_runs_with_a_user_per_service_and_frames_never_reach_a_disk(
    acl_redis, frames_redis, model_server, recommender_models, tmp_path
):
    """Every service as its own user, browser frames through the frames Redis. Afterwards no file of the
    deployment holds a byte sequence of the uploaded photo: not the main Redis's append-only file (on,
    fsync always), not the frames Redis's folder (empty), not the services' temporary folder."""
    scratch = tmp_path / "tmp"  # the services' TMPDIR
    scratch.mkdir()
    common = {"EMOTUNE_LOG_LEVEL": "INFO", "EMOTUNE_STREAM_BLOCK_MS": "50", "EMOTUNE_METRICS_PORT": "0",
              "TMPDIR": str(scratch)}  # fmt: skip
    recommender_port, shards = free_port(), stream_shards()  # the services get this environment's shards
    logs = {name: tmp_path / f"{name}.log" for name in ("capture", "inference", "recommender", "cli")}
    processes = {
        "recommender": start("emotune_recommender", {**common, "REDIS_URL": acl_redis.url("recommender"),
                             "EMOTUNE_RECOMMENDER_PORT": str(recommender_port),
                             "EMOTUNE_RECOMMENDER_MODEL_DIR": str(recommender_models),
                             "EMOTUNE_RECOMMENDATIONS_MAXLEN": "5"}, logs["recommender"], "serve"),
        "inference": start("emotune_inference", {**common, "REDIS_URL": acl_redis.url("inference"),
                           "MODEL_SERVER": model_server.target, "EMOTUNE_EMOTIONS_MAXLEN": "5"}, logs["inference"]),
        "capture": start("emotune_capture", {**common, "REDIS_URL": acl_redis.url("capture"),
                         "EMOTUNE_FRAMES_REDIS_URL": frames_redis.url("capture"),
                         "EMOTUNE_CAPTURE_POLL_S": "0.2", "EMOTUNE_CAPTURE_LEASE_MS": "2000",
                         "EMOTUNE_FACES_MAXLEN": "5"}, logs["capture"], "serve"),
    }  # fmt: skip
    admin, frames_admin = acl_redis.admin(), frames_redis.admin()
    try:
        created = subprocess.run([sys.executable, "-m", "emotune_gateway", "users", "create", "alice", "--sources",
                                  "video"], cwd=ROOT, env={**os.environ, "REDIS_URL": acl_redis.url("gateway")},
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert created.returncode == 0, created.stderr
        headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
        with grpc.insecure_channel(f"127.0.0.1:{recommender_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
        settings = GatewaySettings.model_validate({
            "REDIS_URL": acl_redis.url("gateway"), "frames_redis_url": frames_redis.url("gateway"),
            "recommender_addr": f"127.0.0.1:{recommender_port}",
            "media_dir": DATA_DIR / "video", "rate_limit": "100000/minute", "frame_rate_limit": "1000/second",
            "log_json": False, "stream": {"block_ms": 50, "shards": shards}, "frames_maxlen": 3,
        })  # fmt: skip
        with TestClient(create_app(settings)) as client:
            base = "/v1/users/alice"
            assert client.get("/readyz").status_code == 200  # its reader follows the streams
            session = client.post(f"{base}/sessions", json={"source": "upload"}, headers=headers).json()
            # its frames, crops and events: all on the session's shard
            frames, faces, emotions = (session_stream(s, session["id"], shards) for s in (FRAMES, FACES, EMOTIONS))

            def send_frame() -> None:  # a browser frame: gateway -> capture -> inference -> recommender
                r = client.post(f"{base}/sessions/{session['id']}/frames", content=PHOTO,
                                headers={**headers, "Content-Type": "image/jpeg"})  # fmt: skip
                assert r.status_code == 202, r.text

            for _ in range(6):
                send_frame()
            _until(lambda: client.get(f"{base}/sessions/{session['id']}/mood", headers=headers).status_code == 200,
                   PATIENCE_S, "the recommender's mood of the session")  # fmt: skip
            history = client.get(f"{base}/sessions/{session['id']}/mood/history", headers=headers).json()
            assert history["points"]
            recommended = client.get(f"{base}/sessions/{session['id']}/recommendations", headers=headers)
            assert recommended.status_code == 200 and recommended.json()["items"], recommended.text
            track = recommended.json()["items"][0]["track_id"]
            feedback = {"action": "like", "track_id": track}
            liked = client.post(f"{base}/sessions/{session['id']}/feedback", json=feedback, headers=headers)
            assert liked.status_code == 202 and liked.json().get("applied", True), liked.text
            mood = client.get(f"{base}/sessions/{session['id']}/mood", headers=headers).json()["mood"]
            assert admin.sismember(user_key("alice", "liked", mood), track)  # written by the recommender, as itself
            assert admin.hgetall(user_key("alice", "adjust", mood))  # and what the like taught it

            # a video session: capture takes its lease and writes its state into the session record
            video = client.post(f"{base}/sessions", json={"source": "video:short_hamilton_clip.mp4?loop=1"},
                                headers=headers).json()  # fmt: skip
            _until(lambda: client.get(f"{base}/sessions/{video['id']}", headers=headers).json().get("capture_state")
                   == "running", PATIENCE_S, "capture running the video session")  # fmt: skip
            client.delete(f"{base}/sessions/{video['id']}", headers=headers)
            _until(lambda: not admin.exists(capture_lease(video["id"])), PATIENCE_S, "the lease handed back")

            # frames, faces and events over bounds of 3, 5 and 5: each producer ran its trim script. The browser
            # goes on sending frames meanwhile, as a camera does: capture detects the newest frame, and on a
            # busy machine the faces its full pass finds late are dropped as stale (EMOTUNE_DETECT_LATE_MAX_MS),
            # so six frames need not make six crops.
            def trimmed() -> bool:
                if frames_admin.hget(stats_key(frames), "trimmed") and all(
                        admin.hget(stats_key(s), "trimmed") for s in (faces, emotions)):  # fmt: skip
                    return True
                send_frame()
                return False

            _until(trimmed, PATIENCE_S, "capture, inference and the gateway trimming their streams")
            assert frames_admin.xlen(frames) and not admin.exists(frames)  # the frames went only there
            deleted = client.delete(f"{base}/data", headers=headers).json()
            assert deleted["deleted_keys"] > 0 and deleted["deleted_stream_entries"] > 0
            assert frames_admin.xlen(frames) == 0  # alice's frames, deleted in the frames Redis
        for name, process in processes.items():
            assert process.poll() is None, f"{name} stopped: {logs[name].read_text()[-3000:]}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)
        admin.close()
        frames_admin.close()
    for name in processes:
        assert not refusals(logs[name]), f"{name} was refused: {refusals(logs[name])[:3]}"
        assert processes[name].returncode == 0, f"{name}: {logs[name].read_text()[-3000:]}"
    assert list(frames_redis.dir.iterdir()) == [], "the frames Redis wrote to disk"
    assert list(scratch.iterdir()) == [], "a service wrote temporary files"
    aof = b"".join(f.read_bytes() for f in acl_redis.dir.rglob("*") if f.is_file())
    assert len(aof) > 10_000 and faces.encode() in aof  # it did record the crops, events and sessions
    pieces = [PHOTO[i : i + 32] for i in range(0, len(PHOTO) - 32, len(PHOTO) // 50)]  # 50 pieces of the photo
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert [f.name for f in files if any(piece in f.read_bytes() for piece in pieces)] == []


def _until(predicate, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# -- a Redis Cluster with the same users, as docker-compose.yml's profile `cluster` starts it ---------------------

CREATE = ROOT / "deploy" / "redis" / "cluster-create.sh"
MASTERAUTH = ROOT / "deploy" / "redis" / "masterauth.sh"


@dataclass
class AclCluster:
    ports: list[int]
    processes: list[subprocess.Popen]

    def url(self, user: str) -> str:
        password = PASSWORDS["REDIS_PASSWORD" if user == "default" else f"REDIS_{user.upper()}_PASSWORD"]
        seeds = ",".join(f"127.0.0.1:{port}" for port in self.ports[:2])
        return f"redis+cluster://{user}:{password}@{seeds}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, username="default", password=PASSWORDS["REDIS_PASSWORD"])


def create_cluster(ports: list[int]) -> subprocess.CompletedProcess:
    """deploy/redis/cluster-create.sh, as compose's job and the Kubernetes Job run it (as the administrator)."""
    env = {"PATH": os.environ["PATH"], "REDISCLI_AUTH": PASSWORDS["REDIS_PASSWORD"], "EMOTUNE_CLUSTER_WAIT_S": "30"}
    return subprocess.run(["sh", str(CREATE), *(f"127.0.0.1:{p}" for p in ports)], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def acl_cluster(tmp_path_factory) -> Iterator[AclCluster]:
    """6 nodes of redis-server --cluster-enabled yes with the users of users.acl.template and the replication
    password of masterauth.sh, as docker-compose.yml's redis-cluster-N (names announced: here localhost), joined
    by cluster-create.sh into 3 masters and 3 replicas."""
    folder = tmp_path_factory.mktemp("cluster")
    rendered = render(PASSWORDS)
    assert rendered.returncode == 0, rendered.stderr
    (folder / "users.acl").write_text(rendered.stdout)
    masterauth = subprocess.run(["sh", str(MASTERAUTH)], env={"PATH": os.environ["PATH"], **PASSWORDS},
                                capture_output=True, text=True, timeout=30)  # fmt: skip
    assert masterauth.returncode == 0, masterauth.stderr
    (folder / "masterauth.conf").write_text(masterauth.stdout)
    ports, processes = [free_port() for _ in range(6)], []
    for port in ports:
        data = folder / str(port)
        data.mkdir()
        processes.append(subprocess.Popen([
            shutil.which("redis-server") or "redis-server", str(folder / "masterauth.conf"), "--port", str(port),
            "--bind", "127.0.0.1", "--dir", str(data), "--aclfile", str(folder / "users.acl"),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
            "--cluster-port", str(free_port()),  # a bus port of its own: port + 10000 may be taken or past 65535
            "--cluster-announce-hostname", "localhost", "--cluster-preferred-endpoint-type", "hostname",
            "--save", "", "--appendonly", "no", "--logfile", str(data / "redis.log"),
        ]))  # fmt: skip
    try:
        created = create_cluster(ports)
        assert created.returncode == 0, created.stdout[-3000:] + created.stderr
        assert "creating the cluster" in created.stdout
        yield AclCluster(ports, processes)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def test_the_cluster_is_created_once_and_its_replicas_authenticate_to_their_masters(acl_cluster):
    again = create_cluster(acl_cluster.ports)  # every later `docker compose up` runs the job again
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert "the cluster exists" in again.stdout and "creating" not in again.stdout
    roles = {}
    deadline = time.monotonic() + PATIENCE_S
    while True:
        nodes = [acl_cluster.node(port) for port in acl_cluster.ports]
        infos = [node.info("replication") for node in nodes]
        roles = [info["role"] for info in infos]
        linked = [info.get("master_link_status") == "up" for info in infos if info["role"] == "slave"]
        for node in nodes:
            node.close()
        if sorted(roles) == ["master"] * 3 + ["slave"] * 3 and all(linked):
            break  # each replica logged in to its master as the administrator (masterauth)
        assert time.monotonic() < deadline, f"roles {roles}, replicas linked {linked}"
        time.sleep(0.2)
    anonymous = redis.Redis(port=acl_cluster.ports[0])
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


#: The flows of the main Redis (frames stay on the frames Redis, one server).
CLUSTER_FLOWS = [f for f in FLOWS if f[1] != S_FRAMES]


@pytest.mark.parametrize(("writer", "stream", "reader", "output"), CLUSTER_FLOWS, ids=[f[1] for f in CLUSTER_FLOWS])
async def test_each_service_runs_its_streams_as_its_own_user_on_the_cluster(acl_cluster, writer, stream, reader,
                                                                            output):  # fmt: skip
    """The stream library's every command through redis-py's cluster client (redis+cluster://), as each service's
    user: the client's own commands on connecting (CLUSTER SLOTS, COMMAND, COMMAND GETKEYS) included."""
    writer_redis, reader_redis = connect(acl_cluster.url(writer)), connect(acl_cluster.url(reader))
    admin = connect(acl_cluster.url("default"))
    settings = StreamSettings(batch_size=10, block_ms=50, claim_idle_ms=200, max_deliveries=1, retention_s=1)
    handler = echo(StreamProducer(reader_redis, output, 2, retention_s=1))
    await StreamProducer(writer_redis, stream, 2, retention_s=1).publish_many(crops(6))
    await admin.xadd(stream, {"type": "emotune.v1.FaceCrop", "pb": b"\x08"})  # a poison entry
    consumer = StreamConsumer(reader_redis, stream, reader, handler, settings=settings, expire_every_s=3600,
                              message_type=messages_pb2.FaceCrop)  # fmt: skip
    dlq = dead_letter_stream(stream)
    await _run_until_handled(consumer, admin, stream, reader)
    assert await admin.xlen(output) >= 1
    await asyncio.sleep(1.1)
    lengths = [await admin.xlen(stream), await admin.xlen(dlq), await admin.xlen(output)]
    assert await consumer.expire() == sum(lengths) > 0  # the trim script ran as `reader`, on the shard's node
    for client in (writer_redis, reader_redis, admin):
        await client.aclose()


async def test_on_the_cluster_a_service_still_cannot_touch_what_is_not_its_own(acl_cluster):
    clients = {s: connect(acl_cluster.url(s)) for s in SERVICES}
    refused = {
        "capture": [("XADD", S_EMOTIONS, "*", "a", "b"), ("XREADGROUP", "GROUP", "capture", "c", "STREAMS", S_FACES,
                     ">"), ("GET", "emotune:{s3}:anything")],
        "inference": [("XADD", S_RECOMMENDATIONS, "*", "a", "b"), ("DEL", S_FACES), ("HGETALL", CAPTURE_SESSIONS)],
        "recommender": [("XRANGE", S_FACES, "-", "+"), ("XADD", shard_stream(FACES, 15), "*", "a", "b")],
        "gateway": [("XGROUP", "DESTROY", S_FACES, "inference"), ("XTRIM", S_FACES, "MAXLEN", "0")],
    }  # fmt: skip
    try:
        for service, commands in refused.items():
            for command in commands:
                with pytest.raises(redis.exceptions.NoPermissionError):
                    await clients[service].execute_command(*command)
        for service in SERVICES:  # the cluster's layout is the administrator's: a service only reads the slots map
            node = redis.Redis(port=acl_cluster.ports[0], username=service,
                               password=PASSWORDS[f"REDIS_{service.upper()}_PASSWORD"])  # fmt: skip
            assert node.execute_command("CLUSTER", "SLOTS")
            for command in (("CLUSTER", "NODES"), ("CLUSTER", "FORGET", "x" * 40), ("CLUSTER", "RESET"),
                            ("CLUSTER", "FAILOVER"), ("CLUSTER", "ADDSLOTS", "1"), ("READWRITE",)):  # fmt: skip
                assert _refused(node, *command), f"{service} may run {command}"
            node.close()
        # and what each does need, on any shard
        assert await clients["inference"].xadd(shard_stream(EMOTIONS, 15), {"a": "b"})
        assert await clients["gateway"].xrange(shard_stream(FACES, 0)) == []
        assert await clients["capture"].hset(CAPTURE_SESSIONS, SID, "{}") == 1
    finally:
        for client in clients.values():
            await client.aclose()
