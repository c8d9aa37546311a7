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

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "make test needs these Debian packages: ${missing[*]}" >&2
  echo "install them as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} (apt-get)"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
