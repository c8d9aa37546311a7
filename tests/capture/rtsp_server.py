"""A real RTSP server for capture's tests: GStreamer's (gst-rtsp-server), serving a video file looped as a live camera.

    /usr/bin/python3 tests/capture/rtsp_server.py VIDEO PORT     # rtsp://127.0.0.1:PORT/live

Run by the system interpreter, not the project's virtualenv: GStreamer and its Python bindings are Debian
packages (python3-gi, gir1.2-gst-rtsp-server-1.0, the plugins; scripts/system_packages.sh names them all).
It serves until it is killed.

A file played to its end would end the stream (an RTSP BYE) every ten seconds, which a test could not tell from
a server going away. So the file is decoded by a pipeline of its own that seeks back to the start at its end and
hands its pictures to ``intervideosrc``, a live source that repeats the latest picture at a steady rate: each
client's media encodes that, as a camera's would, never ending while the server runs.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

CHANNEL = "emotune-camera"
FPS = 15


def looping_player(video: str) -> Gst.Pipeline:
    """The file's pictures, in real time, for ever: back to the start at each end."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{video}" ! qtdemux name=demux demux.video_0 ! queue ! decodebin ! videoconvert '
        f"! intervideosink channel={CHANNEL} sync=true"
    )
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message::eos", lambda *_: pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0))
    bus.connect("message::error", _fail)
    return pipeline


def _fail(_bus: Gst.Bus, message: Gst.Message) -> None:
    error, debug = message.parse_error()
    sys.exit(f"rtsp_server: {error.message} ({debug})")


def main(video: str, port: int) -> None:
    Gst.init(None)
    player = looping_player(video)
    player.set_state(Gst.State.PLAYING)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( intervideosrc channel={CHANNEL} ! videoconvert ! videorate ! video/x-raw,format=I420,framerate={FPS}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={FPS} ! rtph264pay name=pay0 pt=96 "
        "config-interval=1 )"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    GLib.MainLoop().run()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))
