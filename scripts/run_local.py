"""Start emotune on one machine (``make run``): the data the services read, fetched when missing; Redis and
the frames Redis when none answers; then every service of the Procfile, under supervisord.

The services are those of the Procfile (``EMOTUNE_PROCFILE``, default ./Procfile), the same commands and
settings that docker-compose.yml runs; each line is a command line, run without a shell. The inference
workers scale out: ``EMOTUNE_INFERENCE_WORKERS`` (default 1) processes, each its own consumer in the
group and, when ``EMOTUNE_METRICS_PORT`` is set, each process its own metrics port from there on.

supervisord (a configuration generated here, in a private folder) restarts a service that dies; one that
exits within ``START_SECS`` of starting ``START_RETRIES`` + 1 times in a row, with supervisord's own growing
pause between tries, goes FATAL and stays down, and scripts/run_events.py says so in a banner. Redis
starts first and stops last. One Ctrl-C stops everything: supervisord sends SIGTERM to each service's
process group in the reverse order of the Procfile, each finishes its work in hand, and Redis exits last
with its data written to ``EMOTUNE_RUN_DIR``/redis (AOF). The frames Redis (``EMOTUNE_FRAMES_REDIS_URL``,
default port 6380) keeps nothing on disk: a camera frame never reaches one.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import redis

ROOT = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
#: What the services read of the data sets: the recommender music/, the gateway's media folder video/.
#: FER-2013 and the photographs only train and test the model (`make data` fetches every set).
RUN_DATASETS = ("music", "video")
SCALED = "inference"  # the service whose processes scale out on one machine
WORKERS_SETTING = "EMOTUNE_INFERENCE_WORKERS"
START_SECS = 10  # a service that runs this long has started; one that exits sooner has failed to start
START_RETRIES = 3  # failed starts in a row before supervisord gives up on a service (FATAL)
STOP_WAIT_SECS = 30  # after SIGTERM, how long a service may take to finish before it is killed
RPC_INTERFACE = "supervisor.rpcinterface:make_main_rpcinterface"  # what supervisorctl talks to
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def parse_procfile(text: str) -> dict[str, str]:
    """The ``name: command`` lines of a Procfile, in order (comments and blank lines skipped)."""
    return {m.group(1): m.group(2).strip() for line in text.splitlines() if (m := PROCFILE_LINE.match(line))}


def run_dir() -> Path:
    """Where the embedded run keeps what outlives it: the Redis data (AOF) and the local user's key."""
    return Path(os.environ.get("EMOTUNE_RUN_DIR", ROOT / ".run"))


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
    key_file = run_dir() / "local.key"  # kept across runs, so that a bookmarked address keeps working
    key = asyncio.run(local_key(url, key_file.read_text().strip() if key_file.exists() else ""))
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)
    key_file.chmod(0o600)
    port = os.environ.get("EMOTUNE_GATEWAY_PORT", "8000")
    print(f"\n  emotune: open http://127.0.0.1:{port}/#key={key}\n", flush=True)


def redis_command(url: str, persistent: bool) -> str:
    """A redis-server for ``url`` on this machine: the main one keeps its data in the run folder (AOF); the
    frames Redis keeps nothing on disk, as in docker-compose.yml."""
    parsed = urlparse(url)
    if parsed.hostname not in LOCAL_HOSTS:
        raise SystemExit(f"no Redis answers at {url}, and it is not on this machine")
    data = run_dir() / ("redis" if persistent else "redis-frames")  # the frames Redis writes nothing there
    data.mkdir(parents=True, exist_ok=True)
    args = [find_redis_server(), "--port", str(parsed.port or 6379), "--bind", "127.0.0.1", "--dir", str(data),
            "--save", "", "--appendonly", "yes" if persistent else "no"]  # fmt: skip
    if parsed.password:
        args += ["--requirepass", parsed.password]
    return shlex.join(args)


@dataclass(frozen=True)
class Program:
    """One process under supervisord: ``group:name`` for the inference workers, else just its name."""

    name: str
    command: str
    priority: int  # started in increasing order, stopped in decreasing order
    group: str = ""
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How supervisorctl names it."""
        return f"{self.group}:{self.name}" if self.group else self.name


def workers() -> int:
    value = os.environ.get(WORKERS_SETTING, "1")
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{WORKERS_SETTING} must be a whole number of at least 1, not {value!r}")
    return int(value)


def service_programs(entries: dict[str, str], count: int, metrics_base: int) -> list[Program]:
    """The Procfile's services, ``count`` processes of the inference one, in the Procfile's order.

    One program per inference worker rather than supervisord's numprocs: each needs a metrics port of its
    own, and %(process_num)d cannot be added to a base port. Each process gets a consumer name that
    survives its restarts (a restarted worker first takes back the entries it held), and, with a base
    port, the next metrics port.
    """
    host = socket.gethostname()
    programs: list[Program] = []
    for priority, (name, command) in enumerate(entries.items(), start=100):
        names = [f"{name}-{n}" for n in range(count)] if name == SCALED else [name]
        for process in names:
            env = {"EMOTUNE_CONSUMER_NAME": f"{host}-{process}"}
            if metrics_base:
                env["EMOTUNE_METRICS_PORT"] = str(metrics_base + len(programs))
            programs.append(Program(process, command, priority, name if name == SCALED else "", env))
    return programs


def supervisor_config(programs: list[Program], folder: Path, password: str, colour: bool) -> str:
    """supervisord's configuration: the programs, each restarted when it dies, its output through
    scripts/run_events.py; a control socket in ``folder`` for supervisorctl."""
    config = folder / "supervisord.conf"
    width = max(len(p.name) for p in programs)
    control = f"{shlex.quote(str(Path(sys.executable).parent / 'supervisorctl'))} -c {shlex.quote(str(config))}"
    listener = [sys.executable, str(ROOT / "scripts" / "run_events.py"), "--width", str(width), "--control", control]
    sections = [
        ("supervisord", {"nodaemon": "true", "logfile": folder / "supervisord.log", "logfile_maxbytes": 0,
                         "pidfile": folder / "supervisord.pid", "childlogdir": folder,
                         **({"user": "root"} if os.geteuid() == 0 else {})}),  # as root, says so: no warning
        ("unix_http_server", {"file": folder / "supervisor.sock", "chmod": "0700", "username": "emotune",
                              "password": password}),
        ("rpcinterface:supervisor", {"supervisor.rpcinterface_factory": RPC_INTERFACE}),
        ("supervisorctl", {"serverurl": f"unix://{folder / 'supervisor.sock'}", "username": "emotune",
                           "password": password}),
        # first started, last stopped (eventlisteners' priority is -1): it prints every line to the end
        ("eventlistener:output", {"command": shlex.join([*listener, *(["--colour"] if colour else [])]),
                                  "events": "PROCESS_LOG,PROCESS_STATE_FATAL", "buffer_size": 100_000,
                                  "autorestart": "true", "stdout_logfile": "NONE",
                                  "stderr_logfile": "/dev/stdout", "stderr_logfile_maxbytes": 0}),
    ]  # fmt: skip
    for p in programs:
        environment = ",".join(f'{k}="{v}"' for k, v in p.environment.items())
        sections.append((f"program:{p.name}", {
            "command": p.command.replace("%", "%%"), "directory": ROOT, "priority": p.priority,
            "autostart": "true", "autorestart": "true", "startsecs": START_SECS, "startretries": START_RETRIES,
            "stopsignal": "TERM", "stopwaitsecs": STOP_WAIT_SECS, "stopasgroup": "true", "killasgroup": "true",
            "redirect_stderr": "true", "stdout_logfile": "NONE", "stdout_events_enabled": "true",
            **({"environment": environment.replace("%", "%%")} if environment else {}),
        }))  # fmt: skip
    groups: dict[str, list[Program]] = {}
    for p in programs:
        if p.group:
            groups.setdefault(p.group, []).append(p)
    for group, members in groups.items():
        sections.append((f"group:{group}", {"programs": ",".join(p.name for p in members),
                                            "priority": members[0].priority}))  # fmt: skip
    return "\n".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in values.items()) for name, values in sections)


def fetch_missing_data() -> None:
    """``make data`` for the sets the services read, before anything starts: it says where it put them."""
    fetch = [sys.executable, str(ROOT / "scripts" / "fetch_data.py"), *RUN_DATASETS]
    if subprocess.call(fetch, cwd=ROOT) != 0:
        raise SystemExit("make run: the data could not be fetched (above); nothing was started")


def redis_to_start(url: str, frames_url: str) -> list[tuple[str, str, bool]]:
    """(name, URL, persistent) of each Redis to start: those that do not answer, the frames Redis only when it is
    another one than the main Redis. Says which ones are used as they are."""
    todo = []
    for name, redis_url, persistent in (("redis", url, True), ("redis-frames", frames_url, False)):
        if not persistent and redis_url == url:
            continue  # the frames go to the main Redis
        if redis_answers(redis_url):
            print(f"using the Redis at {redis_url}", flush=True)
        else:
            todo.append((name, redis_url, persistent))
    return todo


class Forwarder:
    """SIGINT and SIGTERM for supervisord, passed on once it handles signals: it writes its pidfile right after
    it has set its handlers (before, a SIGINT ends it with a traceback while it is still importing)."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile = pidfile
        self.process: subprocess.Popen | None = None
        self.pending: list[int] = []

    def __call__(self, signum: int, _: object) -> None:
        self.pending.append(signum)
        self.flush()

    def flush(self) -> None:
        if self.process is None:
            return  # not started yet: passed on once it is
        deadline = time.monotonic() + 30
        while not self.pidfile.exists() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        while self.pending:
            self.process.send_signal(self.pending.pop(0))


def supervise(programs: list[Program]) -> int:
    """Run ``programs`` under supervisord until it stops; SIGINT and SIGTERM reach it once, from here."""
    folder = Path(tempfile.mkdtemp(prefix="emotune-run-"))
    try:
        config = folder / "supervisord.conf"
        config.write_text(supervisor_config(programs, folder, secrets.token_hex(16), sys.stdout.isatty()))
        config.chmod(0o600)
        forward = Forwarder(folder / "supervisord.pid")
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, forward)
        # Its own process group: a Ctrl-C in the terminal reaches this process only, which passes it on once.
        # Its output comes through a pipe: supervisord writes to its stdout through two open files (its own log,
        # and the services' lines as /dev/stdout), which overwrite each other where stdout is a regular file.
        forward.process = supervisord = subprocess.Popen(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(config)], cwd=ROOT, process_group=0,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        forward.flush()
        print(f"starting {', '.join(p.label for p in programs)}; Ctrl-C stops everything", flush=True)
        ctl = Path(sys.executable).parent / "supervisorctl"
        print(f"see or restart them: {ctl} -c {config} status|restart NAME", flush=True)
        for line in iter(supervisord.stdout.readline, b""):
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
        return supervisord.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    # raw uploaded frames go through a Redis of their own that keeps nothing on disk
    frames_url = os.environ.setdefault("EMOTUNE_FRAMES_REDIS_URL", "redis://127.0.0.1:6380/0")
    # the inference workers talk to the embedded model server
    os.environ.setdefault("MODEL_SERVER", f"127.0.0.1:{os.environ.get('EMOTUNE_MODELSERVER_PORT', '8500')}")
    # the Procfile's `python` is this virtualenv's
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    procfile = Path(os.environ.get("EMOTUNE_PROCFILE", ROOT / "Procfile"))
    entries = parse_procfile(procfile.read_text()) if procfile.exists() else {}
    if entries:
        fetch_missing_data()
    todo = redis_to_start(url, frames_url)
    if not entries:
        print("nothing to start: the Procfile names no service", flush=True)
        return 0
    programs = [Program(name, redis_command(u, persistent), priority)
                for priority, (name, u, persistent) in enumerate(todo, start=10)]  # fmt: skip
    metrics_base = int(os.environ.get("EMOTUNE_METRICS_PORT") or 0)
    programs += service_programs(entries, workers(), metrics_base)
    if any(p.name == "gateway" for p in programs):
        threading.Thread(target=announce_page, args=(url,), daemon=True).start()
    return supervise(programs)


if __name__ == "__main__":
    sys.exit(main())
