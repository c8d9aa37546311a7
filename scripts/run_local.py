"""Start emotune on one machine (``make run``): Redis and the frames Redis when none answers, then every
service, under honcho.

The services are those of the Procfile (``EMOTUNE_PROCFILE``, default ./Procfile), the same
commands and settings names that docker-compose.yml runs. One Ctrl-C stops everything: honcho
sends SIGTERM to every process, each finishes its work in hand, and Redis exits last of all
with its data written to .run/redis (AOF). The frames Redis (``EMOTUNE_FRAMES_REDIS_URL``, default
port 6380) keeps nothing on disk: a camera frame never reaches one.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import redis
from honcho.environ import parse_procfile
from honcho.manager import Manager

ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}


def redis_answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def find_redis_server() -> str:
    """redis-server from PATH; else the binary of the ``redis-server`` PyPI package; else apt-get."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_server  # the PyPI package that ships a redis-server binary

        return str(redis_server.REDIS_SERVER_PATH)
    except ImportError:
        pass
    print("redis-server not found: installing it", flush=True)
    if subprocess.call([sys.executable, "-m", "pip", "install", "-q", "redis-server"]) == 0:
        import redis_server

        return str(redis_server.REDIS_SERVER_PATH)
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.check_call(["apt-get", "install", "-y", "-q", "redis-server"])
        return "redis-server"
    raise SystemExit("no redis-server: install one (apt-get install redis-server) or set REDIS_URL")


async def local_key(url: str, known: str) -> str:
    """The API key of the local user ``local``: ``known`` while it is valid, else a new one (and the
    user, on first use). The local user sits at this machine, so it may open every kind of source (its
    camera, files, streams): granted again at each start, also to a user made before grants existed."""
    from emotune_common.redis_client import connect
    from emotune_gateway import accounts

    client = connect(url)
    try:
        if not await accounts.user_exists(client, "local"):
            await accounts.create_user(client, "local", "You")
        await accounts.set_sources(client, "local", accounts.GRANTABLE)
        if known and await accounts.user_of_key(client, known) == "local":
            return known
        return await accounts.create_key(client, "local")
    finally:
        await client.aclose()


def announce_page(url: str) -> None:
    """Once Redis answers, print the web page's address with the local user's key (in the fragment,
    which the browser keeps to itself)."""
    deadline = time.monotonic() + 120
    while not redis_answers(url):
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)
    key_file = ROOT / ".run" / "local.key"  # kept across runs, so that a bookmarked address keeps working
    key = asyncio.run(local_key(url, key_file.read_text().strip() if key_file.exists() else ""))
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)
    key_file.chmod(0o600)
    port = os.environ.get("EMOTUNE_GATEWAY_PORT", "8000")
    print(f"\n  emotune: open http://127.0.0.1:{port}/#key={key}\n", flush=True)


def redis_command(url: str, persistent: bool) -> str:
    """A redis-server for ``url`` on this machine: the main one keeps its data in .run/redis (AOF); the
    frames Redis keeps nothing on disk, as in docker-compose.yml."""
    parsed = urlparse(url)
    if parsed.hostname not in LOCAL_HOSTS:
        raise SystemExit(f"no Redis answers at {url}, and it is not on this machine")
    data = ROOT / ".run" / ("redis" if persistent else "redis-frames")  # the frames Redis writes nothing there
    data.mkdir(parents=True, exist_ok=True)
    command = f"{find_redis_server()} --port {parsed.port or 6379} --bind 127.0.0.1 --dir {data} --save ''"
    command += " --appendonly yes" if persistent else " --appendonly no"
    if parsed.password:
        command += f" --requirepass {parsed.password}"
    return command


def main() -> int:
    url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    # raw uploaded frames go through a Redis of their own that keeps nothing on disk
    frames_url = os.environ.setdefault("EMOTUNE_FRAMES_REDIS_URL", "redis://127.0.0.1:6380/0")
    # the inference workers talk to the embedded model server
    os.environ.setdefault("MODEL_SERVER", f"127.0.0.1:{os.environ.get('EMOTUNE_MODELSERVER_PORT', '8500')}")
    # the Procfile's `python` is this virtualenv's
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    procfile = Path(os.environ.get("EMOTUNE_PROCFILE", ROOT / "Procfile"))
    entries = parse_procfile(procfile.read_text()).processes if procfile.exists() else {}
    manager = Manager()
    names: list[str] = []
    for name, redis_url, persistent in (("redis", url, True), ("redis-frames", frames_url, False)):
        if redis_answers(redis_url):
            print(f"using the Redis at {redis_url}", flush=True)
        elif entries and (persistent or redis_url != url):
            manager.add_process(name, redis_command(redis_url, persistent), cwd=str(ROOT))
            names.append(name)
    if not entries:
        print("nothing to start: the Procfile names no service", flush=True)
        return 0
    for name, command in entries.items():
        manager.add_process(name, command, cwd=str(ROOT))
        names.append(name)
    print(f"starting {', '.join(names)}; Ctrl-C stops everything", flush=True)
    if "gateway" in names:
        threading.Thread(target=announce_page, args=(url,), daemon=True).start()
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
