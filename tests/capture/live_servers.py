"""Real stream servers on loopback for capture's tests, each able to go away and come back on its port.

- :class:`HttpStreamServer`: ffmpeg's own HTTP server (``ffmpeg -re -stream_loop -1 -i VIDEO -f mpegts -listen 1
  http://...``) serving the video looped as MPEG-TS.
- :class:`RtspStreamServer`: GStreamer's RTSP server (rtsp_server.py, run by the system interpreter).

``stop()`` kills the server and every connection it has: the stream goes away mid-flight, as a camera that loses
power. ``start()`` brings it back on the same port.

``ffmpeg -listen 1`` serves one client and exits, and opening an HTTP stream makes two clients: capture's egress
check asks the URL itself first (emotune_common.egress.StreamAllow.follow_redirects: a GET, its answer's status
and headers), then FFmpeg opens it. So the port is held by a small front that hands each connection to an
``ffmpeg -listen 1`` of its own, started for it on a port of its own: every byte a client gets is ffmpeg's.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from pathlib import Path

from emotune_capture.proxy import pipe

from ..processes import Service, free_port, spawn, wait_until

CONNECT_S = 30.0  # a busy machine may take a while to start an ffmpeg


class HttpStreamServer:
    """``http://127.0.0.1:PORT/live.ts``: the video looped as MPEG-TS, one ``ffmpeg -listen 1`` per connection."""

    def __init__(self, video: Path, log: Path) -> None:
        self.video = video
        self.log = log
        self.port = free_port()
        self.clients = 0  #: connections accepted so far
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None  # None: stopped
        self._open: set[socket.socket] = set()
        self._servers: set[subprocess.Popen] = set()
        self._threads: set[threading.Thread] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.ts"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(8)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="http-stream-front", daemon=True).start()

    def stop(self) -> None:
        """Away: nothing listens on the port, and every stream in flight is cut."""
        with self._lock:
            listener, self._listener = self._listener, None
            servers, sockets, threads = list(self._servers), list(self._open), list(self._threads)
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for server in servers:
            server.kill()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(CONNECT_S)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # stopped
                return
            thread = threading.Thread(target=self._serve, args=(listener, client), daemon=True)
            with self._lock:
                self.clients += 1
                self._threads.add(thread)
            thread.start()

    def _serve(self, listener: socket.socket, client: socket.socket) -> None:
        """One client: an ffmpeg of its own, and the bytes copied both ways until either side ends. Whatever
        :meth:`stop` did not see yet (it took the lock first) sees that the server stopped, and ends."""
        port = free_port()
        with open(self.log, "a") as log:
            server = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.video),
                 "-an", "-c:v", "copy", "-f", "mpegts", "-listen", "1", f"http://127.0.0.1:{port}/live.ts"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        upstream: socket.socket | None = None
        try:
            with self._lock:
                self._servers.add(server)
                self._open.add(client)
                if self._listener is not listener:
                    return
            upstream = wait_until(lambda: _connect(port, server), CONNECT_S, f"ffmpeg listening on {port}")
            with self._lock:
                self._open.add(upstream)
                if self._listener is not listener:
                    return
            pipe(client, upstream, idle_timeout_s=None)
        except (TimeoutError, OSError):
            pass  # killed by stop() while it started, or it did not start: the client sees its connection end
        finally:
            sockets = [s for s in (client, upstream) if s is not None]
            with self._lock:
                self._open.difference_update(sockets)
                self._servers.discard(server)
                self._threads.discard(threading.current_thread())
            for s in sockets:
                s.close()
            server.kill()
            server.wait()


class RtspStreamServer:
    """``rtsp://127.0.0.1:PORT/live``: the video looped as a live H.264 camera, by GStreamer's RTSP server."""

    def __init__(self, video: Path, log: Path) -> None:
        self.video = video
        self.log = log
        self.port = free_port()
        self._service: Service | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/live"

    def start(self) -> None:
        script = Path(__file__).with_name("rtsp_server.py")
        self._service = service = spawn("rtsp-server", ["/usr/bin/python3", str(script), str(self.video),
                                        str(self.port)], log=self.log)  # fmt: skip
        wait_until(lambda: service.check() or _listens(self.port), CONNECT_S, "the RTSP server", detail=service.tail)

    def stop(self) -> None:
        """Away: the process is killed, its connections with it."""
        if self._service is not None:
            self._service.process.kill()
            self._service.process.wait(CONNECT_S)
            self._service = None


def _connect(port: int, server: subprocess.Popen) -> socket.socket | None:
    """A connection to the ffmpeg on ``port``, or None while it is not listening yet (OSError once it exited)."""
    if server.poll() is not None:
        raise OSError(f"ffmpeg exited with {server.returncode}")
    try:
        return socket.create_connection(("127.0.0.1", port), 1)
    except ConnectionRefusedError:
        return None


def _listens(port: int) -> bool:
    with contextlib.suppress(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False
