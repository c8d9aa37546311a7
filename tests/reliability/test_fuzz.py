"""The fuzz targets (fuzz/, atheris) run briefly from their real seeds and find nothing: only the
documented errors escape the codec and the image checks. `make fuzz` runs them for longer."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from ..conftest import ROOT

RUNS = 2000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The seed corpora built by fuzz/seeds.py from real messages and a real photo."""
    if importlib.util.find_spec("atheris") is None:
        pytest.fail("atheris is not installed: it is in requirements-dev.in (make lock, then make setup)")
    out = tmp_path_factory.mktemp("corpus")
    done = subprocess.run([sys.executable, str(ROOT / "fuzz" / "seeds.py"), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


#: libFuzzer's -rss_limit_mb for both targets. Their own peaks: about 130 MB (frames, over 150,000 runs)
#: and 50 MB (codec); fuzz_frames.py checks its own MAX_RSS_MB after every input, to name the input.
RSS_LIMIT_MB = 512
#: libFuzzer measures getrusage's ru_maxrss, which a process started by vfork (Python's subprocess) inherits
#: from its parent: run straight from this pytest, a target "used" the session's peak before its first input
#: (764 MB measured with TensorFlow imported; most likely the 2.2 GB of a clean-clone run that no input
#: reproduced). A small launcher in between gives the target its own count.
LAUNCHER = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"]


@pytest.mark.parametrize(("target", "folder"), [("fuzz_codec", "codec"), ("fuzz_frames", "frames")])
def test_the_fuzz_target_finds_nothing(corpus, tmp_path, target, folder):
    seeds = sorted((corpus / folder).iterdir())
    assert len(seeds) >= 6, seeds
    done = subprocess.run(
        [*LAUNCHER, sys.executable, str(ROOT / "fuzz" / f"{target}.py"), str(corpus / folder),
         f"-atheris_runs={RUNS}", f"-artifact_prefix={tmp_path}/", "-seed=1", f"-rss_limit_mb={RSS_LIMIT_MB}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Done {RUNS}" in done.stderr, done.stderr[-3000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("oom-*"))
