"""docker-compose.yml must be a valid deployment, checked without a Docker engine."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from emotune_common.shards import shard_stream, shard_streams
from emotune_common.streams import FRAMES
from emotune_modelserver.settings import ModelServerSettings

from ..conftest import ROOT

#: Redis's users (deploy/redis/users.acl.template) and the variable of each one's password.
REDIS_USERS = {"capture": "REDIS_CAPTURE_PASSWORD", "inference": "REDIS_INFERENCE_PASSWORD",
               "recommender": "REDIS_RECOMMENDER_PASSWORD", "gateway": "REDIS_GATEWAY_PASSWORD"}  # fmt: skip
#: Compose refuses to run without any of them.
PASSWORDS = {"REDIS_PASSWORD": "test-password", **{var: f"{user}-password" for user, var in REDIS_USERS.items()}}


CLUSTER_FILE = ROOT / "docker-compose.cluster.yml"
CLUSTER_NODES = [f"redis-cluster-{i}" for i in range(6)]


def compose_config(*args: str) -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose); .ci/run installs it")
    env = {**os.environ, **PASSWORDS}
    done = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), *args, "config"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_compose_file_is_valid_with_every_profile():
    config = yaml.safe_load(compose_config())
    assert "redis" in config["services"]
    assert {"modelserver", "prometheus", "grafana", "redis-cluster-create"} <= set(all_profiles_config()["services"])
    assert set(yaml.safe_load(compose_config("-f", str(CLUSTER_FILE)))["services"]) >= set(REDIS_USERS)


@pytest.mark.parametrize("missing", sorted(PASSWORDS))
def test_compose_refuses_to_start_without_each_redis_password(missing):
    env = {**{k: v for k, v in os.environ.items() if k not in PASSWORDS}, **PASSWORDS}
    del env[missing]
    done = subprocess.run([shutil.which("docker-compose") or "docker-compose", "config"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0 and f"set {missing}" in done.stderr


def rendered_acl_template(service: dict) -> str:
    """The template a Redis service renders its users from: the entrypoint renders the command's first word."""
    entrypoint = " ".join(service["entrypoint"])
    assert "sh /etc/emotune/render-acl.sh /etc/emotune/$$template > /tmp/users.acl" in entrypoint
    assert 'exec docker-entrypoint.sh "$$@"' in entrypoint
    command = service["command"]
    assert command[1] == "redis-server" and command[command.index("--aclfile") + 1] == "/tmp/users.acl"
    assert "--requirepass" not in command
    return command[0]


@pytest.mark.parametrize(("server", "template"), [("redis", "users.acl.template"),
                                                  ("redis-frames", "frames-users.acl.template")])  # fmt: skip
def test_both_redis_servers_have_a_user_per_service_and_each_service_connects_as_its_own(server, template):
    services = all_profiles_config()["services"]
    redis = services[server]
    assert rendered_acl_template(redis) == template
    assert f"{ROOT / 'deploy' / 'redis'}:/etc/emotune:ro" in redis["volumes"]
    assert {k: redis["environment"][k] for k in PASSWORDS} == PASSWORDS  # the passwords, from the environment
    assert redis["environment"]["REDISCLI_AUTH"] == "test-password"  # the health check, as the administrator
    text = (ROOT / "deploy" / "redis" / template).read_text()
    assert "user default on >${REDIS_PASSWORD} " in text
    built = {name for name, service in services.items() if "build" in service and name != "modelserver"}
    assert built == set(REDIS_USERS)  # the model server keeps nothing in Redis
    # the frames Redis: only the services that handle raw frames
    users = REDIS_USERS if server == "redis" else {k: REDIS_USERS[k] for k in ("capture", "gateway")}
    setting = "REDIS_URL" if server == "redis" else "EMOTUNE_FRAMES_REDIS_URL"
    for name, var in REDIS_USERS.items():
        line = f"user {name} on >${{{var}}} resetchannels -@all"
        assert (line in text) == (name in users), name
        url = services[name]["environment"].get(setting)
        assert url == (f"redis://{name}:{name}-password@{server}:6379/0" if name in users else None), name


def test_raw_frames_go_through_a_redis_that_keeps_nothing_on_disk():
    services = all_profiles_config()["services"]
    frames = services["redis-frames"]
    command = frames["command"]
    assert command[command.index("--save") + 1] == "" and command[command.index("--appendonly") + 1] == "no"
    assert frames["tmpfs"] == ["/data"] and not any(":/data" in v for v in frames["volumes"])
    assert "ports" not in frames  # only the gateway and capture reach it
    main = (ROOT / "deploy" / "redis" / "users.acl.template").read_text()
    # no service may write a frame to the Redis that persists: none of its key patterns takes a shard of the
    # frames stream (emotune:{sN}:frames), nor the name from before the shards
    services_acl = re.sub(r"\\\n", " ", main).splitlines()
    patterns = [p for line in services_acl if line.startswith("user ") and not line.startswith("user default ")
                for p in re.findall(r"~(\S+)", line)]  # fmt: skip
    assert patterns, "no key pattern found in users.acl.template"
    frame_keys = ["emotune:frames", *shard_streams(FRAMES, 16), shard_stream(FRAMES, 1023)]
    assert not [(p, f) for p in patterns for f in frame_keys if fnmatch.fnmatchcase(f, p)]
    for name in ("capture", "gateway"):
        assert services[name]["depends_on"]["redis-frames"]["condition"] == "service_healthy"


def test_services_restart_and_wait_for_a_healthy_redis():
    for name, service in all_profiles_config()["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name  # it ran once; a restart would only run it again
            continue
        assert service.get("restart") == "unless-stopped", name
        if "build" in service and name != "modelserver":
            assert service["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_redis_keeps_its_data_on_a_volume():
    redis = yaml.safe_load(compose_config())["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-data:/data:rw" in redis["volumes"]


PROFILES = ("modelserver", "observability", "cluster")
#: Jobs that run once and exit (docker-compose.cluster.yml's services wait for them to succeed).
ONE_SHOT = {"redis-cluster-create"}


def all_profiles_config() -> dict:
    return yaml.safe_load(compose_config(*(arg for p in PROFILES for arg in ("--profile", p))))


def dockerfile_cmd(path) -> list[str]:
    import json

    lines = [line for line in path.read_text().splitlines() if line.startswith("CMD ")]
    assert lines, f"{path} has no CMD"
    return json.loads(lines[-1][4:])


def test_every_build_has_a_dockerfile_whose_cmd_is_a_real_entry_point():
    import importlib.util

    builds = {name: s["build"] for name, s in all_profiles_config()["services"].items() if "build" in s}
    assert builds, "no service is built from this repository"
    for name, build in builds.items():
        dockerfile = ROOT / build["dockerfile"]
        assert dockerfile.exists(), f"{name}: {dockerfile} is missing"
        cmd = dockerfile_cmd(dockerfile)
        assert cmd[:2] == ["python", "-m"], f"{name}: CMD {cmd}"
        assert importlib.util.find_spec(cmd[2]) is not None, f"{name}: no module {cmd[2]}"
        assert "USER emotune" in dockerfile.read_text(), f"{name} runs as root"


def test_tensorflow_serving_reads_the_committed_model_config():
    service = all_profiles_config()["services"]["tfserving"]
    assert f"{ROOT / 'models'}:/models:ro" in service["volumes"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in service["command"])
    for flag in ("model_config_file", "batching_parameters_file"):
        assert (ROOT / "models" / flags[flag].removeprefix("/models/")).exists()
    assert flags["enable_batching"] == "true"
    for flag in ("tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism"):  # as the embedded server
        assert flags[flag] == str(ModelServerSettings.model_fields[flag].default), flag
    assert service["image"].split(":")[1].startswith("2.21"), "TF Serving must match the project's TensorFlow"


def test_the_embedded_run_and_compose_run_the_same_services():
    from scripts.run_local import parse_procfile

    procfile = parse_procfile((ROOT / "Procfile").read_text())
    services = all_profiles_config()["services"]
    assert set(procfile) <= set(services), f"in the Procfile only: {set(procfile) - set(services)}"
    for name, command in procfile.items():
        if "build" in services[name]:
            module = command.split()[2]
            assert dockerfile_cmd(ROOT / services[name]["build"]["dockerfile"])[2] == module, name


def test_the_gateway_is_published_on_port_8000_and_waits_for_redis():
    gateway = all_profiles_config()["services"]["gateway"]
    assert any(str(p.get("published", p) if isinstance(p, dict) else p).startswith("8000") for p in gateway["ports"])
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert gateway["environment"]["EMOTUNE_RECOMMENDER_ADDR"] == "recommender:50052"


def test_each_image_is_small_multi_stage_pinned_and_holds_only_its_own_service():
    for dockerfile in sorted((ROOT / "services").glob("*/Dockerfile")):
        service, text = dockerfile.parent.name, dockerfile.read_text()
        stages = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
        assert stages == ["python:3.11-slim", "python:3.11-slim"], f"{service}: {stages}"
        installs = [line for line in text.splitlines() if "pip install" in line]
        assert len(installs) == 1 and "-c constraints.txt" in installs[0], f"{service}: unpinned install"
        assert installs[0].split("constraints.txt", 1)[1].split() == ["./services/common", f"./services/{service}"]
        assert "HEALTHCHECK" in text and "USER emotune" in text, service


# -- the profile `cluster`: a Redis Cluster of 6 nodes, and docker-compose.cluster.yml on it ----------------------


def cluster_config() -> dict:
    """docker-compose.yml with docker-compose.cluster.yml over it, every profile on, as its first lines say."""
    return yaml.safe_load(compose_config("-f", str(CLUSTER_FILE), *(a for p in PROFILES for a in ("--profile", p))))


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_cluster_profile_runs_six_cluster_nodes_with_aof_and_the_same_users():
    services = all_profiles_config()["services"]
    single = services["redis"]
    nodes = {name: s for name, s in services.items() if name.startswith("redis-cluster-") and name not in ONE_SHOT}
    assert sorted(nodes) == CLUSTER_NODES
    volumes = set()
    for name, node in nodes.items():
        assert node["profiles"] == ["cluster"], name
        assert node["image"] == single["image"], name
        assert rendered_acl_template(node) == "users.acl.template", name  # the main Redis's users, on every node
        assert f"{ROOT / 'deploy' / 'redis'}:/etc/emotune:ro" in node["volumes"], name
        assert {k: node["environment"][k] for k in PASSWORDS} == PASSWORDS, name
        assert node["healthcheck"] == single["healthcheck"], name
        command = node["command"]
        assert option(command, "--cluster-enabled") == "yes", name
        assert option(command, "--appendonly") == "yes" and option(command, "--appendfsync") == "everysec", name
        assert option(command, "--cluster-config-file") == "nodes.conf", name  # in /data, on the node's volume
        # clients get the node's name: stable when a container is recreated with a new IP
        assert option(command, "--cluster-preferred-endpoint-type") == "hostname", name
        entrypoint = " ".join(node["entrypoint"])
        assert node["hostname"] == name and '--cluster-announce-hostname "$$(hostname)"' in entrypoint, name
        # replicas authenticate to their master: the password, in the clear, only in memory and only for Redis
        assert command[2] == "/tmp/masterauth.conf" and node["tmpfs"] == ["/tmp"], name
        assert "(umask 077 && sh /etc/emotune/masterauth.sh > /tmp/masterauth.conf)" in entrypoint, name
        [data] = [v for v in node["volumes"] if v.endswith(":/data:rw") or v.endswith(":/data")]
        volumes.add(data.split(":")[0])
        assert "ports" not in node, f"{name}: a client outside the compose network could not follow a MOVED"
    assert len(volumes) == 6, "a volume of its own for each node"


def test_a_one_shot_job_creates_the_cluster_once_with_one_replica_per_master():
    job = all_profiles_config()["services"]["redis-cluster-create"]
    assert job["profiles"] == ["cluster"] and job["restart"] == "no"
    script, *nodes = job["command"][1:]
    assert job["command"][0] == "sh" and script == "/etc/emotune/cluster-create.sh"
    assert (ROOT / "deploy" / "redis" / "cluster-create.sh").exists()
    assert nodes == [f"{n}:6379" for n in CLUSTER_NODES]
    assert job["environment"]["EMOTUNE_CLUSTER_REPLICAS"] == "1"  # 6 nodes: 3 masters, 3 replicas
    assert job["environment"]["REDISCLI_AUTH"] == PASSWORDS["REDIS_PASSWORD"]  # as the administrator
    assert job["depends_on"] == {n: {"condition": "service_healthy"} for n in CLUSTER_NODES}
    done = subprocess.run(["sh", "-n", str(ROOT / "deploy" / "redis" / "cluster-create.sh")], capture_output=True)
    assert done.returncode == 0, done.stderr


def test_the_cluster_file_points_each_service_at_every_node_as_its_own_user():
    single, cluster = all_profiles_config()["services"], cluster_config()["services"]
    assert set(cluster) == set(single), "the override adds no service: the nodes are the profile's"
    for name in REDIS_USERS:
        url = urlsplit(cluster[name]["environment"]["REDIS_URL"])
        assert url.scheme == "redis+cluster" and url.path == "/0", name
        credentials, _, seeds = url.netloc.rpartition("@")
        assert credentials == f"{name}:{name}-password", name
        assert seeds.split(",") == [f"{n}:6379" for n in CLUSTER_NODES], name
        assert cluster[name]["depends_on"]["redis-cluster-create"] == {"condition": "service_completed_successfully"}
        # everything else as in docker-compose.yml: the frames Redis, the other settings
        others = {k: v for k, v in cluster[name]["environment"].items() if k != "REDIS_URL"}
        assert others == {k: v for k, v in single[name]["environment"].items() if k != "REDIS_URL"}, name
    for name, service in cluster.items():
        if name not in REDIS_USERS:  # (a second file may list volumes in another order)
            same = [{**s, "volumes": sorted(s.get("volumes", []))} for s in (service, single[name])]
            assert same[0] == same[1], f"{name}: docker-compose.cluster.yml changes only the services' Redis"
