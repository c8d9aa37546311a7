"""How big each benchmark runs: its full size, or a tiny one for the smoke run of `make test`.

`python -m bench --smoke` sets ``BENCH_SMOKE=1`` before any benchmark is imported (and the benchmarks'
own subprocesses inherit it), so every size below is read once, at import. The smoke run asserts only
that each benchmark still runs to the end and writes its section: it keeps them from rotting between
the runs of `make bench`, and its figures mean nothing.
"""

from __future__ import annotations

import os

SMOKE = os.environ.get("BENCH_SMOKE") == "1"


def size(name: str, full: float, smoke: float) -> float:
    """The environment's ``name`` if set, else ``smoke`` in a smoke run, else ``full``."""
    if name in os.environ:
        return type(full)(os.environ[name])
    return smoke if SMOKE else full
