"""Capture's way to a stream: checked right before it is opened, and every connection FFmpeg makes for it
through a proxy that checks it too, so that nothing the user controls leads capture where
``EMOTUNE_STREAM_ALLOW`` refuses (emotune_common.egress says what that refuses and why).

Checking the URL before opening it is not enough. OpenCV hands the URL to FFmpeg, which follows HTTP redirects
by itself (up to 8; no option turns that off), reads HLS playlists that name further URLs, and looks the name
up again (DNS rebinding: a name can answer a public address to the check and a loopback one to FFmpeg). So:

- :meth:`StreamGuard.open_url` checks the stream's addresses now (the gateway checked them when the session
  started, but a name may resolve elsewhere by now) and walks an HTTP stream's redirects, each hop checked, so
  that a refused one is a clear session state and log line;
- FFmpeg sends every HTTP request, and tunnels every TLS connection (https, rtsps), through the proxy of
  ``http_proxy`` when that is set. The guard runs one on loopback for the process and points ``http_proxy`` at
  it (and drops ``no_proxy``): each request and CONNECT is checked where it happens, redirects and playlists
  included, and the proxy connects to the very address it checked. A refusal is a 403 to FFmpeg and a
  ``stream_refused`` log line;
- plain RTSP has no proxy in FFmpeg: the guard gives FFmpeg the URL with the host replaced by the address it
  has just checked, so no second lookup can differ. An RTSP server's own redirect (RTSP 3xx), which FFmpeg
  follows, is the one route this cannot see (README, Capture).
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from emotune_capture.settings import CaptureSettings
from emotune_common.egress import Endpoint, StreamAllow, StreamRefused, endpoint, redacted, with_host
from emotune_common.logs import get_logger
from emotune_common.sources import SourceError

log = get_logger("emotune.capture.proxy")

CONNECT_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0  # a stream that sends nothing this long is gone
MAX_HEAD = 64 * 1024
_PROXY_VARIABLES = ("http_proxy", "no_proxy", "NO_PROXY")


class StreamGuard:
    """The process's checked way to streams: a loopback proxy for FFmpeg, and the check before opening."""

    def __init__(self, allow: StreamAllow) -> None:
        self.allow = allow
        self.refused = 0  #: connections the proxy refused so far
        self._server = _Proxy(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stream-proxy", daemon=True)
        self._thread.start()
        self._saved = {name: os.environ.get(name) for name in _PROXY_VARIABLES}
        host, port = self._server.server_address[:2]
        os.environ["http_proxy"] = f"http://{host}:{port}"
        for name in _PROXY_VARIABLES[1:]:
            os.environ.pop(name, None)

    def open_url(self, url: str) -> str:
        """The URL to give OpenCV for stream ``url``, checked now (:class:`StreamRefused` says why not)."""
        try:
            addresses = self.allow.check(url)
            target = endpoint(url)
            if target.scheme in ("http", "https"):
                self.allow.follow_redirects(url)
        except StreamRefused as e:
            log.warning("stream_refused", url=redacted(url), reason=str(e))
            raise
        return with_host(url, addresses[0]) if target.scheme == "rtsp" else url

    def close(self) -> None:
        """Stop the proxy and give the environment its proxy settings back (the service stops, or a test ends)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_GUARD: StreamGuard | None = None
_GUARD_LOCK = threading.Lock()


def install(allow: StreamAllow) -> StreamGuard:
    """Guard this process's streams with ``allow``: one guard a process, since ``http_proxy`` is the process's."""
    global _GUARD
    with _GUARD_LOCK:
        if _GUARD is None:
            _GUARD = StreamGuard(allow)
        else:
            _GUARD.allow = allow
        return _GUARD


def guard() -> StreamGuard:
    """The process's guard; installed on first use with the allow-list of the settings."""
    return _GUARD if _GUARD is not None else install(CaptureSettings().stream_policy())


def uninstall() -> None:
    """Stop the process's guard, if any (the next stream opened installs one again)."""
    global _GUARD
    with _GUARD_LOCK:
        if _GUARD is not None:
            _GUARD.close()
            _GUARD = None


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: StreamGuard) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Relay)


@dataclass(frozen=True)
class _Request:
    """What FFmpeg asked the proxy for: where to connect, and what to send there first."""

    url: str  # for logs: the absolute URL, or tls://host:port for a CONNECT
    endpoint: Endpoint
    upstream_head: bytes  # the request as the server gets it (nothing for a CONNECT)

    @classmethod
    def parse(cls, head: bytes) -> _Request:
        line, _, headers = head.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ")
        if method == "CONNECT":  # TLS (https, rtsps) through the proxy
            parts = urlsplit(f"//{target}")
            if not parts.hostname or not parts.port:
                raise ValueError(f"CONNECT {target!r}: not host:port")
            return cls(f"tls://{target}", Endpoint("tls", parts.hostname, parts.port), b"")
        parts = urlsplit(target)
        if parts.scheme.lower() != "http":
            raise ValueError(f"{method} {target!r}: a proxied request is for an absolute http:// URL")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        kept = [h for h in headers.split(b"\r\n") if h and not h.lower().startswith(b"proxy-")]
        upstream_head = b"\r\n".join([f"{method} {path} {version}".encode("latin-1"), *kept]) + b"\r\n\r\n"
        return cls(target, endpoint(target), upstream_head)


class _Relay(socketserver.StreamRequestHandler):
    """One connection from FFmpeg: checked, connected to the checked address, then copied both ways."""

    server: _Proxy
    rbufsize = 0  # nothing FFmpeg sends after the head may stay behind in a buffer

    def handle(self) -> None:
        head = _read_head(self.rfile)
        if head is None:
            return
        try:
            request = _Request.parse(head)
        except (ValueError, SourceError) as e:
            self._answer(400, "Bad Request", str(e))
            return
        try:
            upstream = self.server.owner.allow.connect(request.endpoint, CONNECT_TIMEOUT_S)
        except StreamRefused as e:
            self.server.owner.refused += 1
            log.warning("stream_refused", url=redacted(request.url), reason=str(e), via="proxy")
            self._answer(403, "Forbidden", f"refused by EMOTUNE_STREAM_ALLOW: {e}")
            return
        except (SourceError, OSError) as e:
            self._answer(502, "Bad Gateway", f"cannot reach {redacted(request.url)}: {e}")
            return
        with upstream:
            if request.upstream_head:
                upstream.sendall(request.upstream_head)
            else:
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pipe(self.connection, upstream)

    def _answer(self, code: int, reason: str, text: str) -> None:
        body = text.encode()
        self.wfile.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)  # fmt: skip


def _read_head(stream) -> bytes | None:
    """The request line and headers (up to the blank line), or None for a closed or oversized one."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline(MAX_HEAD)
        if not line or len(head) + len(line) > MAX_HEAD:
            return None
        head += line
    return head


def pipe(client: socket.socket, upstream: socket.socket, idle_timeout_s: float | None = IDLE_TIMEOUT_S) -> None:
    """Copy both ways until either side closes (or sends nothing for ``idle_timeout_s``)."""
    client.settimeout(idle_timeout_s)
    upstream.settimeout(idle_timeout_s)
    back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
    back.start()
    _copy(client, upstream)
    back.join()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for side in (sink, source):
        with contextlib.suppress(OSError):
            side.shutdown(socket.SHUT_RDWR)
