"""The running emotune system as real processes, for the browser tests.

capture (uploads on) -> inference (over a model server) -> recommender (LightFM, tracks from a fake
Spotify that knows every artist of the catalogue) -> gateway (REST, WebSocket, the page), on free
ports, over a Redis of the tests' own.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from ..conftest import ROOT, free_port
from ..fakes.spotify import FakeSpotify

TITLE_WORDS = (
    ("Golden", "Paper", "Midnight", "Electric", "Quiet", "Silver", "Wild", "Neon", "Broken", "Summer"),
    ("Hearts", "Rain", "Highway", "Echoes", "Morning", "Lights", "River", "Dreams", "Fire", "Waves"),
)


def track_titles(artist: str, n: int = 3) -> list[str]:
    """``n`` made-up but stable song titles for an artist."""
    seed = hashlib.sha1(artist.encode()).digest()
    return [f"{TITLE_WORDS[0][seed[2 * i] % 10]} {TITLE_WORDS[1][seed[2 * i + 1] % 10]}" for i in range(n)]


def catalogue_spotify() -> FakeSpotify:
    """A fake Spotify with three tracks for every artist the recommender can recommend."""
    from emotune_recommender.data import load_music

    names = load_music().artists["name"].astype(str)
    return FakeSpotify({name: track_titles(name) for name in names})


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log: Path
    args: list[str]
    env: dict[str, str]

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class EmotuneSystem:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is the gateway (and the page)."""

    workdir: Path
    redis_url: str
    model_server: str
    spotify: FakeSpotify
    gateway_port: int = field(default_factory=free_port)
    recommender_port: int = field(default_factory=free_port)
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "EMOTUNE_LOG_LEVEL": "WARNING",
            "EMOTUNE_STREAM_BLOCK_MS": "50",
            "SPOTIPY_CLIENT_ID": "emotune-test",
            "SPOTIPY_CLIENT_SECRET": "emotune-test-secret",
            "EMOTUNE_SPOTIFY_API_URL": self.spotify.api_url,
            "EMOTUNE_SPOTIFY_ACCOUNTS_URL": self.spotify.accounts_url,
            **extra,
        }

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Service:
        log = self.workdir / f"{name}.log"
        with open(log, "a") as out:
            process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=out,
                                       stderr=subprocess.STDOUT)  # fmt: skip
        self.services[name] = Service(name, process, log, args, env)
        return self.services[name]

    def restart_gateway(self, within: float = 60) -> None:
        """Stop the gateway (its clients lose their connections) and start it again on the same port."""
        old = self.services["gateway"]
        old.process.send_signal(signal.SIGTERM)
        old.process.wait(20)
        self._spawn("gateway", old.args, old.env)
        self._wait_http("gateway", f"{self.url}/readyz", time.monotonic() + within)

    def start(self, within: float = 150) -> EmotuneSystem:
        """Start every service at once, then wait until each answers (the recommender trains first)."""
        ops = {name: free_port() for name in ("capture", "inference")}
        self._spawn("recommender", ["emotune_recommender", "serve"], self.env(
            EMOTUNE_RECOMMENDER_PORT=str(self.recommender_port),
            EMOTUNE_RECOMMENDER_MODEL_DIR=str(self.workdir / "recommender-models"),
        ))  # fmt: skip
        self._spawn("capture", ["emotune_capture", "serve"], self.env(
            EMOTUNE_CAPTURE_UPLOADS="true", EMOTUNE_CAPTURE_SOURCES="", EMOTUNE_METRICS_PORT=str(ops["capture"]),
        ))  # fmt: skip
        self._spawn("inference", ["emotune_inference"], self.env(
            MODEL_SERVER=self.model_server, EMOTUNE_METRICS_PORT=str(ops["inference"]),
        ))  # fmt: skip
        self._spawn("gateway", ["emotune_gateway", "serve"], self.env(
            EMOTUNE_GATEWAY_HOST="127.0.0.1", EMOTUNE_GATEWAY_PORT=str(self.gateway_port), EMOTUNE_PUBLIC_URL=self.url,
            EMOTUNE_RECOMMENDER_ADDR=f"127.0.0.1:{self.recommender_port}",
            EMOTUNE_SPOTIFY_AUTHORIZE_URL=self.spotify.authorize_url,
        ))  # fmt: skip
        deadline = time.monotonic() + within
        for name, port in ops.items():
            self._wait_http(name, f"http://127.0.0.1:{port}/readyz", deadline)
        self._wait_http("gateway", f"{self.url}/readyz", deadline)
        with grpc.insecure_channel(f"127.0.0.1:{self.recommender_port}") as channel:
            while True:
                self._check_alive("recommender")
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    break
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the recommender did not start:\n{self.logs()}") from None
        return self

    def _check_alive(self, name: str) -> None:
        service = self.services[name]
        if service.process.poll() is not None:
            raise RuntimeError(f"{name} exited with {service.process.returncode}:\n{service.tail()}")

    def _wait_http(self, name: str, url: str, deadline: float) -> None:
        while True:
            self._check_alive(name)
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} is not ready at {url}:\n{self.logs()}")
            time.sleep(0.2)

    def create_user(self, user_id: str) -> str:
        """A user and their API key, with the admin command."""
        done = subprocess.run([sys.executable, "-m", "emotune_gateway", "users", "create", user_id], cwd=ROOT,
                              env=self.env(), capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    def logs(self, chars: int = 2000) -> str:
        return "\n".join(f"--- {s.name} (exit {s.process.poll()}) ---\n{s.tail(chars)}" for s in self.services.values())

    def stop(self) -> None:
        for service in self.services.values():
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        for service in self.services.values():
            try:
                service.process.wait(20)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait(5)
