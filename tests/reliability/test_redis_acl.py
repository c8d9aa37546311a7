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
from emotune_common.keys import CAPTURE_SESSIONS, api_key_index, session_key, user_key
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import connect
from emotune_common.settings import StreamSettings
from emotune_common.streams import EMOTIONS, FACES, FEEDBACK, FRAMES, RECOMMENDATIONS, dead_letter_stream
from emotune_gateway.app import create_app
from emotune_gateway.settings import GatewaySettings

from ..common.helpers import crops, wait_for
from ..conftest import DATA_DIR, ROOT, free_port
from ..processes import PATIENCE_S

TEMPLATE = ROOT / "deploy" / "redis" / "users.acl.template"
FRAMES_TEMPLATE = ROOT / "deploy" / "redis" / "frames-users.acl.template"
RENDER = ROOT / "deploy" / "redis" / "render-acl.sh"
SERVICES = ("capture", "inference", "recommender", "gateway")
#: The test's passwords, as the environment gives them (URL-safe, as .env.example asks).
PASSWORDS = {"REDIS_PASSWORD": "admin-pw", **{f"REDIS_{s.upper()}_PASSWORD": f"{s}-pw-{s[::-1]}" for s in SERVICES}}
PHOTO = (DATA_DIR / "images" / "obama.jpg").read_bytes()
SID = "0123456789abcdef0123456789abcdef"  # a session id as the gateway makes them (32 hex digits)


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
    ("gateway", FRAMES, "capture", FACES),
    ("capture", FACES, "inference", EMOTIONS),
    ("inference", EMOTIONS, "recommender", RECOMMENDATIONS),
    ("gateway", FEEDBACK, "recommender", RECOMMENDATIONS),
]


@pytest.mark.parametrize(("writer", "stream", "reader", "output"), FLOWS, ids=[f[1] for f in FLOWS])
async def test_each_service_runs_its_streams_as_its_own_user(acl_redis, frames_redis, writer, stream, reader, output):
    """Publishing with trims, a consumer group with a dead letter, de-duplication, and the expiry of the
    input, its dead letters and the output: the stream library's every command, as the services' users.
    Frames are in the frames Redis, and capture writes their crops to the main one."""
    source = frames_redis if stream == FRAMES else acl_redis
    writer_redis, reader_redis = connect(source.url(writer)), connect(source.url(reader))
    output_redis = connect(acl_redis.url(reader)) if stream == FRAMES else reader_redis
    settings = StreamSettings(batch_size=10, block_ms=50, claim_idle_ms=200, max_deliveries=1, retention_s=1)
    if stream == FRAMES:  # capture's real handler, on real photos
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
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    dlq = dead_letter_stream(stream)
    admin, output_admin = connect(source.url("default")), connect(acl_redis.url("default"))
    try:
        await wait_for(lambda: _at_least(admin, dlq, 1), PATIENCE_S, "the poison entry dead-lettered")
        await wait_for(lambda: _no_pending(admin, stream, reader), PATIENCE_S, "every entry handled")
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    assert await output_admin.xlen(output) >= 1
    await asyncio.sleep(1.1)
    lengths = [await admin.xlen(stream), await admin.xlen(dlq), await output_admin.xlen(output)]
    assert await consumer.expire() == sum(lengths) > 0  # every one of them aged out: the script ran as `reader`
    assert [await admin.xlen(stream), await admin.xlen(dlq), await output_admin.xlen(output)] == [0, 0, 0]
    for client in {writer_redis, reader_redis, output_redis, admin, output_admin}:
        await client.aclose()


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
    admin.xadd(FACES, {"type": "x", "pb": "y"})
    frames_admin.xadd(FRAMES, {"type": "x", "pb": "y"})
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
            ("XRANGE", EMOTIONS, "-", "+"),
            ("XADD", EMOTIONS, "*", "a", "b"),
            ("XRANGE", FRAMES, "-", "+"),  # frames are in the frames Redis only
            ("XADD", FRAMES, "*", "a", "b"),
            ("XREADGROUP", "GROUP", "capture", "c", "STREAMS", FRAMES, ">"),
            ("XDEL", FACES, "0-1"),
            ("HSET", account, "name", "Mallory"),
            ("SCAN", "0"),
        ],
        "inference": [
            ("HGETALL", account),
            ("HGETALL", record),
            ("GET", api_key_index("d" * 64)),
            ("XRANGE", FRAMES, "-", "+"),
            ("XADD", RECOMMENDATIONS, "*", "a", "b"),
            ("HGETALL", mood),
            ("HGETALL", CAPTURE_SESSIONS),
            ("DEL", FACES),
        ],
        "recommender": [
            ("HGETALL", account),
            ("HGET", spotify, "token"),
            ("GET", api_key_index("d" * 64)),
            ("HGETALL", record),
            ("XRANGE", FRAMES, "-", "+"),
            ("XRANGE", FACES, "-", "+"),
            ("XADD", FRAMES, "*", "a", "b"),
            ("DEL", EMOTIONS),
            ("HGETALL", CAPTURE_SESSIONS),
        ],
        "gateway": [
            ("XGROUP", "DESTROY", FACES, "inference"),
            ("XREADGROUP", "GROUP", "g", "c", "STREAMS", FACES, ">"),
            ("XADD", FRAMES, "*", "a", "b"),  # frames are in the frames Redis only
            ("XRANGE", FRAMES, "-", "+"),
            ("DEL", FACES),
            ("XTRIM", FACES, "MAXLEN", "0"),
            ("EVAL", "return redis.call('FLUSHALL')", "0"),
            ("RENAME", account, "emotune:user:mallory:account"),
        ],
    }
    for service, commands in refused.items():
        for command in [*commands, *everyone_refused]:
            assert _refused(clients[service], *command), f"{service} may run {command}"
    frames_refused = {  # the frames Redis: frames only, and no consumer group for the gateway
        "capture": [("XADD", FACES, "*", "a", "b"), ("XDEL", FRAMES, "0-1"), ("DEL", FRAMES), ("HGETALL", account)],
        "gateway": [("XREADGROUP", "GROUP", "capture", "c", "STREAMS", FRAMES, ">"), ("DEL", FRAMES),
                    ("XADD", FACES, "*", "a", "b"), ("HGETALL", account)],
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
    assert frames_clients["gateway"].xrange(FRAMES) and frames_clients["capture"].xrange(FRAMES)
    assert admin.hget(account, "name") == b"Alice" and admin.exists(FACES) and frames_admin.exists(FRAMES)
    for client in (*clients.values(), *frames_clients.values(), admin, frames_admin):
        client.close()


# -- the whole system, every service as its own user ----------------------------------------------------


def start(module: str, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip


def refusals(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if "no permissions" in line or "NOPERM" in line]


@pytest.mark.slow
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
    recommender_port = free_port()
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
            "log_json": False, "stream": {"block_ms": 50}, "frames_maxlen": 3,
        })  # fmt: skip
        with TestClient(create_app(settings)) as client:
            base = "/v1/users/alice"
            assert client.get("/readyz").status_code == 200  # its reader follows the streams
            session = client.post(f"{base}/sessions", json={"source": "upload"}, headers=headers).json()
            for _ in range(6):  # browser frames: gateway -> capture -> inference -> recommender
                r = client.post(f"{base}/sessions/{session['id']}/frames", content=PHOTO,
                                headers={**headers, "Content-Type": "image/jpeg"})  # fmt: skip
                assert r.status_code == 202, r.text
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
            _until(
                lambda: not admin.exists(f"emotune:capture:lease:{video['id']}"), PATIENCE_S, "the lease handed back"
            )

            # six frames, faces and events over bounds of 3, 5 and 5: each producer ran its trim script
            _until(lambda: frames_admin.hget(f"emotune:stats:{FRAMES}", "trimmed")
                   and all(admin.hget(f"emotune:stats:{s}", "trimmed") for s in (FACES, EMOTIONS)), PATIENCE_S,
                   "capture, inference and the gateway trimming their streams")  # fmt: skip
            assert frames_admin.xlen(FRAMES) and not admin.exists(FRAMES)  # the frames went only there
            deleted = client.delete(f"{base}/data", headers=headers).json()
            assert deleted["deleted_keys"] > 0 and deleted["deleted_stream_entries"] > 0
            assert frames_admin.xlen(FRAMES) == 0  # alice's frames, deleted in the frames Redis
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
    assert len(aof) > 10_000 and FACES.encode() in aof  # it did record the crops, events and sessions
    pieces = [PHOTO[i : i + 32] for i in range(0, len(PHOTO) - 32, len(PHOTO) // 50)]  # 50 pieces of the photo
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert [f.name for f in files if any(piece in f.read_bytes() for piece in pieces)] == []


def _until(predicate, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
