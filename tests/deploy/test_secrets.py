"""No known passwords: the Redis entry point (deploy/redis/render-acl.sh, which compose's Redis entry point and
the Kubernetes init containers run) refuses a placeholder and says why, and `make env` writes a .env with
fresh random passwords that it accepts. Real scripts, real shells; nothing of the repository's own .env."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT

REDIS_DIR = ROOT / "deploy" / "redis"
TEMPLATES = ("users.acl.template", "frames-users.acl.template")
EXAMPLE = ROOT / ".env.example"


def env_file(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def redis_passwords(values: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if re.fullmatch(r"REDIS_[A-Z_]*PASSWORD", k)}


def render(template: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = ["sh", str(REDIS_DIR / "render-acl.sh"), str(REDIS_DIR / template)]
    return subprocess.run(command, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=30)


def make_env(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "make_env.py"), "--out", str(out), *args],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_redis_entry_point_refuses_the_example_passwords_and_says_why(template):
    done = render(template, redis_passwords(env_file(EXAMPLE)))  # what `cp .env.example .env` gave compose
    assert done.returncode == 1 and done.stdout == ""
    assert re.search(r"REDIS_\w*PASSWORD is still a placeholder", done.stderr)
    assert "Redis does not start with it" in done.stderr and "`make env`" in done.stderr


@pytest.mark.parametrize("placeholder", ["change-me-too", "CHANGE_ME", "changeme", "Change-Me-Please"])
def test_any_one_placeholder_among_real_passwords_is_refused(tmp_path, placeholder):
    assert make_env(tmp_path / ".env").returncode == 0
    passwords = redis_passwords(env_file(tmp_path / ".env"))
    for name in passwords:
        done = render("users.acl.template", {**passwords, name: placeholder})
        assert done.returncode == 1 and f"{name} is still a placeholder" in done.stderr, name


def test_make_env_writes_fresh_random_passwords_and_keeps_an_existing_env(tmp_path):
    out = tmp_path / ".env"
    done = make_env(out)
    assert done.returncode == 0, done.stderr
    example, written = env_file(EXAMPLE), env_file(out)
    assert set(written) == set(example)
    passwords = {k: v for k, v in written.items() if k.endswith("_PASSWORD")}
    assert set(passwords) >= {
        "REDIS_PASSWORD",
        "REDIS_CAPTURE_PASSWORD",
        "REDIS_INFERENCE_PASSWORD",
        "REDIS_RECOMMENDER_PASSWORD",
        "REDIS_GATEWAY_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
    }
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in passwords.values()), passwords  # 32 random bytes, URL-safe
    assert len(set(passwords.values())) == len(passwords)  # each its own
    assert "change-me" not in out.read_text().lower()
    assert {k: v for k, v in written.items() if k not in passwords} == {
        k: v for k, v in example.items() if k not in passwords
    }  # every other line as it was
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    for template in TEMPLATES:  # and the Redis entry point starts with them
        rendered = render(template, redis_passwords(written))
        assert rendered.returncode == 0, rendered.stderr

    kept = make_env(out)
    assert kept.returncode == 1 and "exists" in kept.stderr and "FORCE=1" in kept.stderr
    assert env_file(out) == written
    assert make_env(out, "--force").returncode == 0
    again = env_file(out)
    assert all(again[k] != v for k, v in passwords.items()), "fresh values on every run"


def test_make_env_runs_the_script():
    done = subprocess.run(["make", "-n", "env"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "scripts/make_env.py" in done.stdout and "--force" not in done.stdout
    forced = subprocess.run(["make", "-n", "env", "FORCE=1"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert "scripts/make_env.py --force" in forced.stdout


def compose_entry_point(tmp_path: Path, template: str, env: dict[str, str]) -> tuple[int, str, Path]:
    """Run docker-compose.yml's Redis entry point as the container would, with the repository's deploy/redis as
    /etc/emotune and a stand-in for the image's docker-entrypoint.sh that notes that Redis would start."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    entrypoint = compose["x-redis"]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"]
    script = entrypoint[2].replace("$$", "$").replace("/etc/emotune", str(REDIS_DIR))
    script = script.replace("/tmp/users.acl", str(tmp_path / "users.acl"))
    started = tmp_path / "started"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "docker-entrypoint.sh"
    stand_in.write_text(f'#!/bin/sh\necho "$@" > {started}\n')
    stand_in.chmod(0o755)
    done = subprocess.run(["sh", "-c", script, *entrypoint[3:], template, "redis-server", "--aclfile", "x"],
                          env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **env}, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    return done.returncode, done.stderr, started


@pytest.mark.parametrize("template", TEMPLATES)
def test_compose_starts_redis_only_with_passwords_that_are_not_placeholders(tmp_path, template):
    code, stderr, started = compose_entry_point(tmp_path, template, redis_passwords(env_file(EXAMPLE)))
    assert code != 0 and "is still a placeholder" in stderr
    assert not started.exists(), "redis-server was started with a placeholder password"

    assert make_env(tmp_path / ".env").returncode == 0
    code, stderr, started = compose_entry_point(tmp_path, template, redis_passwords(env_file(tmp_path / ".env")))
    assert code == 0, stderr
    assert started.read_text() == "redis-server --aclfile x\n"
