"""Run the benchmarks and write bench/RESULTS.md (`make bench`).

python -m bench [NAME ...]                    # all by default, in the order of NAMES below
python -m bench --smoke --out DIR [NAME ...]  # each at a tiny size, written to DIR (what `make test` runs)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

NAMES = ("streams", "cluster", "modelserver", "pipeline", "recommender", "fanout", "load")
HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all of {NAMES})")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that each runs, measures nothing")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for RESULTS.md and results/ (default: bench/)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(NAMES)}")
    if args.smoke:
        os.environ["BENCH_SMOKE"] = "1"  # read by bench.sizes at import, inherited by the benchmarks' subprocesses
    benches = {name: importlib.import_module(f"bench.{name}") for name in NAMES}
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    sections = args.out / "results"  # one file a benchmark, so running one keeps the others' latest figures
    sections.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(args.names or NAMES, 1):
        print(f"[{index}/{len(args.names or NAMES)}] running {name} ...", flush=True)
        result = benches[name].run(redis_url)
        print(json.dumps(result, indent=2), flush=True)
        stamp = (
            f"_Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}{' (smoke run: tiny sizes, no meaning)' if args.smoke else ''}._"
        )
        (sections / f"{name}.md").write_text(benches[name].markdown(result) + "\n\n" + stamp + "\n")
        (sections / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    written = [(sections / f"{n}.md").read_text() for n in NAMES if (sections / f"{n}.md").exists()]
    results = args.out / "RESULTS.md"
    results.write_text("# Benchmark results\n\nWritten by `make bench`.\n\n" + "\n".join(written))
    print(f"wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
