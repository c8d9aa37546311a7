"""Every benchmark once, at a tiny size (`python -m bench --smoke`), so that none of them rots between the
runs of `make bench`. It asserts only that each runs to the end and writes its section: the figures of a
smoke run mean nothing, and go to a temporary folder, never to bench/RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.__main__ import NAMES

from ..conftest import shared_redis_url
from ..processes import ROOT


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_benchmark_runs_and_writes_its_section(tmp_path, recommender_models):
    # the session's recommender model: the load and recommender benchmarks load it instead of training one
    env = {**os.environ, "REDIS_URL": shared_redis_url(), "EMOTUNE_LOG_LEVEL": "WARNING",
           "EMOTUNE_RECOMMENDER_MODEL_DIR": str(recommender_models)}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=880)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = (tmp_path / "RESULTS.md").read_text()
    for name in NAMES:
        section = (tmp_path / "results" / f"{name}.md").read_text()
        assert section.startswith("## ") and "smoke run" in section, name
        assert section.split("\n\n_Measured")[0] in results, name
        assert (tmp_path / "results" / f"{name}.json").stat().st_size > 2, name
