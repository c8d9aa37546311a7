"""Local HTTP stream servers for the stream allow-list tests: a camera and its tricks, and a trap.

:class:`StreamServer` listens on a loopback address of the test's choice (127.0.0.1, 127.0.0.2, ...: all of
127/8 is this machine) and answers:

- ``/stream.mjpg``: an MJPEG stream (``multipart/x-mixed-replace``), as an IP camera serves one;
- ``/redirect/<URL, quoted>`` (:meth:`StreamServer.redirect`): a 302 to URL (in the path: a stream source
  keeps no query of its own);
- ``/lying/<URL, quoted>``: a 302 to URL for FFmpeg (User-Agent ``Lavf/...``) only, and a plain 200 to anyone
  else, as a server would that hides its redirect from a check made before FFmpeg opens it.

Every connection is counted (:attr:`StreamServer.connections`) and every request kept
(:attr:`StreamServer.requests`), so that a server standing for a refused address can prove nothing reached it.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from urllib.parse import quote, unquote

import cv2
import numpy as np

FRAME = cv2.imencode(".jpg", np.full((96, 128, 3), 80, np.uint8))[1].tobytes()


class StreamServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", frames: int = 50) -> None:
        self.frames = frames
        self.connections = 0
        self.requests: list[tuple[str, str]] = []  # (path, User-Agent)
        super().__init__((host, 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def redirect(self, to: str, kind: str = "redirect") -> str:
        """The URL of this server that redirects to ``to`` (``kind``: redirect, or lying)."""
        return f"{self.base}/{kind}/{quote(to, safe='')}"

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True

    def __enter__(self) -> StreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: StreamServer

    def do_GET(self) -> None:
        agent = self.headers.get("User-Agent", "")
        self.server.requests.append((self.path, agent))
        kind, _, to = self.path.lstrip("/").partition("/")
        if kind == "redirect" or (kind == "lying" and agent.startswith("Lavf")):
            self.send_response(302)
            self.send_header("Location", unquote(to))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/stream.mjpg":
            self._stream()
        else:
            self.send_response(200 if kind == "lying" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for _ in range(self.server.frames):
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(FRAME))
                self.wfile.write(FRAME + b"\r\n")
                time.sleep(0.05)
        except OSError:  # the client went
            pass

    def log_message(self, *args) -> None:
        pass
