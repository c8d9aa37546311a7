#!/usr/bin/env bash
# Install the Debian packages that `make test` needs and this machine lacks: with apt-get when run as
# root, else a clear message naming them. Each package is named with the command or file that shows
# it is there, so a machine that has them all installs nothing and needs no network.
set -euo pipefail

missing=()
need() {  # need PACKAGE PATH-OR-COMMAND
  if [[ "$2" == /* ]]; then [ -e "$2" ] || missing+=("$1"); else command -v "$2" >/dev/null || missing+=("$1"); fi
}
need redis-server redis-server     # the test Redis servers, and Redis Cluster nodes
need redis-tools redis-cli
need docker-compose docker-compose # validates docker-compose.yml (no Docker engine runs it here)
need chromium /usr/bin/chromium    # the browser tests drive Debian's chromium through Playwright
# capture's stream tests (tests/capture/live_servers.py): ffmpeg's own HTTP server, and GStreamer's RTSP
# server run by the system python3 (tests/capture/rtsp_server.py) with the plugins of its pipelines
lib=/usr/lib/$(uname -m)-linux-gnu
need ffmpeg ffmpeg
need python3-gi /usr/lib/python3/dist-packages/gi/__init__.py
need gir1.2-gst-rtsp-server-1.0 "$lib/girepository-1.0/GstRtspServer-1.0.typelib"
need gstreamer1.0-plugins-base "$lib/gstreamer-1.0/libgstplayback.so"  # decodebin, videoconvert, videorate
need gstreamer1.0-plugins-good "$lib/gstreamer-1.0/libgstrtp.so"       # rtph264pay (and qtdemux)
need gstreamer1.0-plugins-bad "$lib/gstreamer-1.0/libgstinter.so"      # intervideosink, intervideosrc
need gstreamer1.0-plugins-ugly "$lib/gstreamer-1.0/libgstx264.so"      # x264enc
need gstreamer1.0-libav "$lib/gstreamer-1.0/libgstlibav.so"            # the H.264 decoder decodebin picks

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "make test needs these Debian packages: ${missing[*]}" >&2
  echo "install them as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} (apt-get)"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
