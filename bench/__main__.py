"""Run the benchmarks and write bench/RESULTS.md (`make bench`).

python -m bench [NAME ...]     # all by default; names: streams, modelserver, pipeline, recommender, fanout, load
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import fanout, load, modelserver, pipeline, recommender, streams

BENCHES = {
    "streams": streams,
    "modelserver": modelserver,
    "pipeline": pipeline,
    "recommender": recommender,
    "fanout": fanout,
    "load": load,
}
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SECTIONS = HERE / "results"  # one file a benchmark, so running one keeps the others' latest figures


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    unknown = sorted(set(names) - set(BENCHES))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {sorted(BENCHES)}", file=sys.stderr)
        return 2
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    SECTIONS.mkdir(exist_ok=True)
    for name in names:
        print(f"running {name} ...", flush=True)
        result = BENCHES[name].run(redis_url)
        print(json.dumps(result, indent=2), flush=True)
        stamp = (
            f"_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}._"
        )
        (SECTIONS / f"{name}.md").write_text(BENCHES[name].markdown(result) + "\n\n" + stamp + "\n")
        (SECTIONS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    sections = [(SECTIONS / f"{n}.md").read_text() for n in BENCHES if (SECTIONS / f"{n}.md").exists()]
    RESULTS.write_text("# Benchmark results\n\nWritten by `make bench`.\n\n" + "\n".join(sections))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
