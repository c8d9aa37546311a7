"""Benchmarks (`make bench`): each compares emotune with a baseline side by side in one run."""

import socket


def free_port() -> int:
    """A TCP port nobody listens on, for the servers a benchmark starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
