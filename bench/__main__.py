"""Run the benchmarks and write bench/RESULTS.md (`make bench`).

python -m bench [NAME ...]     # all by default; names: streams
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import streams

BENCHES = {"streams": streams}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHES)}", file=sys.stderr)
        return 2
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    sections = []
    for name in names:
        print(f"running {name} ...", flush=True)
        result = BENCHES[name].run(redis_url)
        print(json.dumps(result, indent=2), flush=True)
        sections.append(BENCHES[name].markdown(result))
    header = (
        f"# Benchmark results\n\nWritten by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.\n"
    )
    RESULTS.write_text(header + "\n" + "\n\n".join(sections) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
