"""deploy/k8s must be a valid Kubernetes deployment of what docker-compose.yml runs, checked offline.

Every variant is built as kustomize builds it (deploy/k8s: KEDA; deploy/k8s/hpa: a CPU HPA instead;
deploy/k8s/cluster: a Redis Cluster in place of the single Redis, with KEDA), every object is validated
strictly against the Kubernetes schemas bundled in kubernetes-validate, and the KEDA objects against the CRDs
vendored in deploy/k8s/schemas with jsonschema. Nothing is downloaded: the network is closed to this module.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from emotune_common.shards import shard_stream
from emotune_common.streams import FACES
from emotune_inference.__main__ import GROUP as INFERENCE_GROUP

from ..conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
VARIANTS = {"keda": K8S, "hpa": K8S / "hpa", "cluster": K8S / "cluster"}
NAMESPACE = "emotune"
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
#: The oldest Kubernetes the manifests are written for (autoscaling/v2, grpc probes GA) and the newest known.
KUBERNETES_VERSIONS = ("1.29", latest_version())
#: The services whose ops server (emotune_common.lifecycle.serve_ops) listens on EMOTUNE_METRICS_PORT.
OPS_PORT_SERVICES = {"capture", "inference", "recommender", "modelserver"}
REDIS_DIR = ROOT / "deploy" / "redis"
SECRET = "emotune-secrets"
#: The two Redis servers (workload kind, name) and the ACL template in deploy/redis their users come from.
REDIS_SERVERS = {
    ("StatefulSet", "redis"): "users.acl.template",
    ("Deployment", "redis-frames"): "frames-users.acl.template",
}
#: The settings that carry a Redis URL, the Redis Service each must lead to, and the services that read them.
REDIS_URLS = {
    "REDIS_URL": ("redis", {"capture", "inference", "recommender", "gateway"}),
    "EMOTUNE_FRAMES_REDIS_URL": ("redis-frames", {"capture", "gateway"}),
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Validation must work without a network: any attempt to resolve or connect fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a Kubernetes manifest test tried to reach the network: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# --- building: what `kubectl kustomize DIR` outputs, for the kustomize features these files use ---------------


def build(directory: Path) -> list[dict]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - {"apiVersion", "kind", "resources", "patches"}
    assert not unknown, (
        f"{directory}: this test builds kustomizations of `resources:` and `patches:` only, not {unknown}"
    )
    assert kustomization["kind"] == "Kustomization"
    objects: list[dict] = []
    for entry in kustomization["resources"]:
        path = (directory / entry).resolve()
        objects += build(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for entry in kustomization.get("patches", []):
        assert set(entry) in ({"path"}, {"patch"}), f"{directory}: a patch by target is not built here: {entry}"
        text = (directory / entry["path"]).read_text() if "path" in entry else entry["patch"]
        for patch in (d for d in yaml.safe_load_all(text) if d):
            objects = strategic_merge(objects, patch)
    return objects


def strategic_merge(objects: list[dict], patch: dict) -> list[dict]:
    """A strategic merge patch as kustomize applies it, for what these files patch: a whole object deleted
    (``$patch: delete``), or maps merged key by key (no list in a patch: lists merge by field in kustomize)."""
    matches = [o for o in objects if key(o) == key(patch)]
    assert len(matches) == 1, f"a patch matches {len(matches)} objects: {key(patch)}"
    if patch.get("$patch") == "delete":
        return [o for o in objects if o is not matches[0]]

    def merge(into: dict, change: dict) -> dict:
        merged = dict(into)
        for k, v in change.items():
            assert not isinstance(v, list), f"{key(patch)}: a list in a patch ({k}) is not merged here"
            merged[k] = merge(into.get(k, {}), v) if isinstance(v, dict) else v
        return merged

    return [merge(o, patch) if o is matches[0] else o for o in objects]


@functools.cache
def built(variant: str) -> tuple[dict, ...]:
    return tuple(build(VARIANTS[variant]))


def objects(variant: str, *kinds: str) -> list[dict]:
    return [copy.deepcopy(o) for o in built(variant) if not kinds or o["kind"] in kinds]


def one(variant: str, kind: str, name: str) -> dict:
    found = [o for o in objects(variant, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{variant}: {len(found)} {kind} named {name}"
    return found[0]


def all_objects() -> list[dict]:
    """Every object of every variant, once (an object a variant patches, once more)."""
    seen: dict[str, dict] = {}
    for variant in VARIANTS:
        for o in objects(variant):
            seen.setdefault(json.dumps(o, sort_keys=True), o)
    return list(seen.values())


def key(o: dict) -> tuple[str, str, str]:
    return o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]


def jobs(variant: str) -> set[str]:
    """The workloads that run once to the end: no probes."""
    return {o["metadata"]["name"] for o in objects(variant, "Job")}


def pod_specs(variant: str) -> list[tuple[str, dict]]:
    return [(w["metadata"]["name"], w["spec"]["template"]["spec"]) for w in objects(variant, *WORKLOADS)]


def containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod["containers"]


def read_env_file(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(pairs)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # merge keys (<<) included


# --- structure -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_builds_without_duplicates_all_in_the_namespace(variant):
    keys = [key(o) for o in objects(variant)]
    assert len(keys) == len(set(keys)), f"duplicates: {sorted(k for k in keys if keys.count(k) > 1)}"
    for o in objects(variant):
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, f"{key(o)} is not in the namespace {NAMESPACE}"
    assert one(variant, "Namespace", NAMESPACE)


def test_every_manifest_file_is_part_of_a_variant():
    listed: set[Path] = set()

    def walk(directory: Path) -> None:
        for entry in yaml.safe_load((directory / "kustomization.yaml").read_text())["resources"]:
            path = (directory / entry).resolve()
            if path.is_dir():
                walk(path)
            else:
                listed.add(path)

    def walk_patches(directory: Path) -> None:
        for entry in yaml.safe_load((directory / "kustomization.yaml").read_text()).get("patches", []):
            if "path" in entry:
                listed.add((directory / entry["path"]).resolve())

    for directory in VARIANTS.values():
        walk(directory)
        walk_patches(directory)
    manifests = {
        p.resolve() for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml" and "schemas" not in p.parts
    }
    assert manifests - listed == set(), "manifests no kustomization lists"


def test_only_one_autoscaler_acts_on_the_inference_workers():
    keda, hpa = ({key(o) for o in objects(v)} for v in ("keda", "hpa"))
    assert {k[0] for k in keda - hpa} == KEDA_KINDS
    assert {k[0] for k in hpa - keda} == {"HorizontalPodAutoscaler"}
    assert not objects("keda", "HorizontalPodAutoscaler")
    assert not objects("hpa", *KEDA_KINDS)
    assert "replicas" not in one("keda", "Deployment", "inference")["spec"], "an autoscaler owns the replica count"


# --- schemas -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(version):
    checked = set()
    for o in all_objects():
        if o["kind"] in KEDA_KINDS:
            continue
        try:  # strict: unknown fields are errors, as with kubectl apply --validate=strict
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{key(o)}: {'.'.join(map(str, e.path))}: {e.message}")
        checked.add(key(o))
    new = {("ConfigMap", NAMESPACE, "emotune-redis-acl"), ("Service", NAMESPACE, "redis-frames"),
           ("Deployment", NAMESPACE, "redis-frames"), ("StatefulSet", NAMESPACE, "redis"),
           ("StatefulSet", NAMESPACE, "redis-cluster"), ("Job", NAMESPACE, "redis-cluster-create"),
           ("PodDisruptionBudget", NAMESPACE, "redis-cluster")}  # fmt: skip
    assert new <= checked and len(checked) >= 18


def test_the_kubernetes_validation_is_strict():
    deployment = one("keda", "Deployment", "gateway")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def crd_schema(filename: str) -> dict:
    """The v1alpha1 openAPIV3Schema of a vendored KEDA CRD, with unknown fields made errors: the API server
    would drop them silently (structural pruning), so a misspelt field would be lost, not refused."""
    crd = yaml.safe_load((K8S / "schemas" / filename).read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]

    def strict(schema):
        if isinstance(schema, dict):
            schema = {k: strict(v) for k, v in schema.items()}
            if "properties" in schema and "additionalProperties" not in schema:
                schema["additionalProperties"] = False
        elif isinstance(schema, list):
            schema = [strict(s) for s in schema]
        return schema

    return strict(version["schema"]["openAPIV3Schema"])


KEDA_SCHEMAS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}


@pytest.mark.parametrize("variant", ["keda", "cluster"])
def test_the_keda_objects_are_valid_against_keda_crds(variant):
    keda = objects(variant, *KEDA_KINDS)
    assert {o["kind"] for o in keda} == KEDA_KINDS
    for o in keda:
        assert o["apiVersion"] == "keda.sh/v1alpha1"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", o["metadata"]["name"])
        errors = list(jsonschema.Draft7Validator(crd_schema(KEDA_SCHEMAS[o["kind"]])).iter_errors(o))
        assert not errors, f"{key(o)}: " + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_keda_validation_is_strict():
    scaled = one("keda", "ScaledObject", "inference")
    scaled["spec"]["maxReplicas"] = 10  # the HPA's name, not KEDA's
    del scaled["spec"]["triggers"]
    errors = list(jsonschema.Draft7Validator(crd_schema(KEDA_SCHEMAS["ScaledObject"])).iter_errors(scaled))
    assert len(errors) == 2


# --- settings and secrets ------------------------------------------------------------------------------------


def test_the_settings_configmap_equals_deploy_emotune_env():
    [configmap] = [o for o in all_objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "emotune-settings"]
    assert configmap["data"] == read_env_file(ROOT / "deploy" / "emotune.env"), (
        "deploy/k8s/base/settings.yaml is out of date: python deploy/k8s/render_settings.py"
    )


def test_the_redis_acl_configmap_holds_deploy_redis_as_it_is():
    configmap = one("keda", "ConfigMap", "emotune-redis-acl")
    assert configmap["data"] == {p.name: p.read_text() for p in REDIS_DIR.iterdir() if p.is_file()}, (
        "deploy/k8s/base/redis-acl.yaml is out of date: python deploy/k8s/render_settings.py"
    )


def test_the_generated_configmaps_are_up_to_date():
    done = subprocess.run([sys.executable, str(K8S / "render_settings.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def emotune_containers(variant: str = "keda") -> dict[str, dict]:
    """emotune's own container of each workload, by workload name."""
    return {name: c for name, pod in pod_specs(variant) for c in containers(pod) if c["image"].startswith("emotune/")}


def secret_values(variant: str = "keda") -> dict[str, str]:
    return one(variant, "Secret", SECRET)["stringData"]


def filled_secret(variant: str = "keda") -> dict[str, str]:
    """The Secret as an operator fills it in: each placeholder replaced by a password of its own."""
    return {k: v.replace("change-me-", "filled-in-") for k, v in secret_values(variant).items()}


def secret_env(container: dict) -> dict[str, str]:
    """A container's env entries that come from the Secret: variable name -> key."""
    env = {}
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == SECRET and ref["key"] in secret_values(), entry
            assert not ref.get("optional"), entry
            env[entry["name"]] = ref["key"]
    return env


def test_every_emotune_container_reads_the_settings_and_only_its_own_secrets():
    for name, container in emotune_containers().items():
        # no secretRef: the Secret holds every service's password, and each container names its own keys
        assert container.get("envFrom") == [{"configMapRef": {"name": "emotune-settings"}}], name
        assert {e["name"] for e in container.get("env", [])} == set(secret_env(container)), name
    for _, pod in pod_specs("keda"):
        for container in containers(pod):
            assert not [s for s in container.get("envFrom", []) if "secretRef" in s], container["name"]


def test_the_secret_template_holds_a_password_per_redis_user_and_the_urls_that_carry_them():
    values = secret_values()
    users = {"capture", "inference", "recommender", "gateway"}
    passwords = {"REDIS_PASSWORD"} | {f"REDIS_{u.upper()}_PASSWORD" for u in users}
    urls = {f"{u.upper()}_REDIS_URL" for u in users} | {"CAPTURE_FRAMES_REDIS_URL", "GATEWAY_FRAMES_REDIS_URL"}
    assert set(values) == passwords | urls | {"SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET"}
    assert len({values[p] for p in passwords}) == len(passwords), "each user has a password of its own"


def localized(workdir: Path, container: dict, text: str) -> str:
    """``text`` with a container's mount paths replaced by their volumes' folders in ``workdir``."""
    mounts = {m["mountPath"]: workdir / m["name"] for m in container["volumeMounts"]}
    pattern = "|".join(re.escape(path) for path in sorted(mounts, key=len, reverse=True))
    return re.sub(f"({pattern})(?=/)", lambda m: str(mounts[m.group(1)]), text)


def run_init_container(
    server: tuple[str, str], workdir: Path, secret: dict[str, str], variant: str = "keda"
) -> subprocess.CompletedProcess:
    """Run a Redis pod's init container as the pod would (its command, its env from ``secret``, its volumes: the
    ConfigMap's files and empty dirs)."""
    pod = one(variant, *server)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, volume in volumes.items():
        (workdir / name).mkdir()
        if "configMap" in volume:
            for file, text in one(variant, "ConfigMap", volume["configMap"]["name"])["data"].items():
                (workdir / name / file).write_text(text)
    [init] = pod["initContainers"]
    env = {name: secret[k] for name, k in secret_env(init).items()}
    command = [localized(workdir, init, arg) for arg in init["command"]]
    return subprocess.run(command, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=30)


def rendered_acl(server: tuple[str, str], workdir: Path, variant: str = "keda") -> str:
    """The file the server reads with --aclfile, as the init container writes it from the filled-in Secret."""
    done = run_init_container(server, workdir, filled_secret(variant), variant)
    assert done.returncode == 0, done.stderr
    [server_container] = one(variant, *server)["spec"]["template"]["spec"]["containers"]
    args = server_container["args"]
    return Path(localized(workdir, server_container, args[args.index("--aclfile") + 1])).read_text()


@pytest.mark.parametrize("server", sorted(REDIS_SERVERS), ids=lambda s: s[1])
def test_the_secret_template_as_it_is_stops_each_redis_at_its_init_container(server, tmp_path):
    """The template's passwords are placeholders anyone can read: the init container refuses them, so the
    server never starts with them."""
    done = run_init_container(server, tmp_path, secret_values())
    assert done.returncode == 1 and done.stdout == ""
    assert re.search(r"REDIS_\w*PASSWORD is still a placeholder", done.stderr) and "emotune-secrets" in done.stderr


@pytest.mark.parametrize("server", sorted(REDIS_SERVERS), ids=lambda s: s[1])
def test_each_redis_renders_its_users_as_render_acl_sh_does_from_the_template(server, tmp_path):
    """The init container, run on the ConfigMap's copy of deploy/redis, writes the very file that render-acl.sh
    writes from deploy/redis itself, with the Secret's passwords; and the server reads that file."""
    workdir = tmp_path / "pod"
    workdir.mkdir()
    acl = rendered_acl(server, workdir)
    template = REDIS_DIR / REDIS_SERVERS[server]
    env = {name: filled_secret()[name] for name in template_passwords(template)}  # compose's names, the Secret's keys
    done = subprocess.run(["sh", str(REDIS_DIR / "render-acl.sh"), str(template)], env={"PATH": os.environ["PATH"],
                          **env}, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert acl == done.stdout
    assert f"user default on #{sha256(filled_secret()['REDIS_PASSWORD'])} " in acl


def template_passwords(template: Path) -> set[str]:
    """The variables whose values render-acl.sh hashes into the ACL file: >${NAME} outside comments."""
    lines = [line for line in template.read_text().splitlines() if not line.lstrip().startswith("#")]
    return set(re.findall(r">\$\{([A-Z0-9_]+)\}", "\n".join(lines)))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_each_service_connects_to_each_redis_as_its_own_user(tmp_path):
    """The password in a service's URL is the one its user of that Redis was rendered with (the Secret's
    REDIS_<SERVICE>_PASSWORD), the user is the service's, and the URL leads to that Redis's Service."""
    acls = {}
    for server in REDIS_SERVERS:
        (tmp_path / server[1]).mkdir()
        acls[server[1]] = rendered_acl(server, tmp_path / server[1])
    values = filled_secret()
    for name, container in emotune_containers().items():
        env = secret_env(container)
        for setting, (service, readers) in REDIS_URLS.items():
            if name not in readers:
                assert setting not in env, f"{name} gets {setting}"
                continue
            url = urlsplit(values[env[setting]])
            assert (url.scheme, url.username, url.port, url.path) == ("redis", name, 6379, "/0"), f"{name} {setting}"
            assert url.hostname.partition(".")[0] == service, f"{name} {setting}"
            assert_service_port("keda", url.hostname, url.port)
            assert url.password == values[f"REDIS_{name.upper()}_PASSWORD"], f"{name} {setting}"
            assert f"user {name} on #{sha256(url.password)} " in acls[service], f"{name} {setting}"


def assert_service_port(variant: str, host: str, port: int) -> None:
    """host (a Service name, maybe with .namespace.svc...) and port lead to a container port of a pod."""
    name, _, rest = host.partition(".")
    assert rest in ("", NAMESPACE, f"{NAMESPACE}.svc", f"{NAMESPACE}.svc.cluster.local"), host
    service = one(variant, "Service", name)
    [service_port] = [p for p in service["spec"]["ports"] if p["port"] == port]
    pods = [(n, p) for n, p in pod_specs(variant) if selects(service, n, variant)]
    assert pods, f"Service {name} selects no workload"
    for workload, pod in pods:
        assert has_port(pod, service_port.get("targetPort", port)), f"{workload} lacks port {service_port}"


def selects(service: dict, workload: str, variant: str) -> bool:
    [w] = [w for w in objects(variant, *WORKLOADS) if w["metadata"]["name"] == workload]
    labels = w["spec"]["template"]["metadata"]["labels"]
    return service["spec"]["selector"].items() <= labels.items()


def has_port(pod: dict, port: int | str) -> bool:
    declared = [p for c in pod["containers"] for p in c.get("ports", [])]
    return any(port in (p["containerPort"], p.get("name")) for p in declared)


def test_the_addresses_in_the_settings_are_services_of_the_namespace():
    settings = read_env_file(ROOT / "deploy" / "emotune.env")
    for address in (settings["MODEL_SERVER"], settings["EMOTUNE_RECOMMENDER_ADDR"]):
        host, port = address.rsplit(":", 1)
        assert_service_port("keda", host, int(port))


def test_every_service_and_the_ingress_reach_a_port_of_a_pod():
    for variant in VARIANTS:
        for service in objects(variant, "Service"):
            for port in service["spec"]["ports"]:
                assert_service_port(variant, service["metadata"]["name"], port["port"])
    ingress = one("keda", "Ingress", "gateway")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            [port] = [p for p in one("keda", "Service", backend["name"])["spec"]["ports"]
                      if backend["port"] in ({"name": p.get("name")}, {"number": p["port"]})]  # fmt: skip
            assert_service_port("keda", backend["name"], port["port"])


def test_every_volume_claim_config_map_and_secret_a_pod_names_exists():
    for variant in VARIANTS:
        names = {(o["kind"], o["metadata"]["name"]) for o in objects(variant)}
        claim_templates = {
            t["metadata"]["name"]
            for w in objects(variant, "StatefulSet")
            for t in w["spec"].get("volumeClaimTemplates", [])
        }
        for workload, pod in pod_specs(variant):
            for volume in pod.get("volumes", []):
                if "persistentVolumeClaim" in volume:
                    assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names, workload
                if "configMap" in volume:
                    assert ("ConfigMap", volume["configMap"]["name"]) in names, workload
            for container in containers(pod):
                mounts = {m["name"] for m in container.get("volumeMounts", [])}
                assert mounts <= {v["name"] for v in pod.get("volumes", [])} | claim_templates, workload
                for source in container.get("envFrom", []):
                    for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                        if ref in source:
                            assert (kind, source[ref]["name"]) in names, workload
                for entry in container.get("env", []):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    if ref is not None:
                        secret = one(variant, "Secret", ref["name"])
                        assert ref["key"] in secret["stringData"], f"{workload}: {entry['name']}"


# --- the Redis Cluster overlay (deploy/k8s/cluster) ------------------------------------------------------------

CLUSTER = ("StatefulSet", "redis-cluster")
CLUSTER_NODE_ENTRYPOINT_PARTS = (
    "sh /etc/emotune/render-acl.sh /etc/emotune/users.acl.template > /tmp/users.acl",
    "(umask 077 && sh /etc/emotune/masterauth.sh > /tmp/masterauth.conf)",
)


def test_the_cluster_variant_runs_a_redis_cluster_in_place_of_the_single_redis():
    names = {key(o) for o in objects("cluster")}
    single = {
        ("StatefulSet", NAMESPACE, "redis"),
        ("Service", NAMESPACE, "redis"),
        ("Service", NAMESPACE, "redis-headless"),
    }
    assert not names & single, "nothing connects to the single Redis on a cluster"
    assert {key(o) for o in objects("keda")} - single - names == set(), "everything else of base/ is there"
    assert ("StatefulSet", NAMESPACE, "redis-frames") not in names and (
        "Deployment",
        NAMESPACE,
        "redis-frames",
    ) in names


def test_the_redis_cluster_runs_as_composes_cluster_nodes():
    service = compose()["services"]["redis-cluster-0"]
    statefulset = one("cluster", *CLUSTER)
    spec = statefulset["spec"]
    pod = spec["template"]["spec"]
    [init] = pod["initContainers"]
    [container] = pod["containers"]
    assert container["image"] == init["image"] == service["image"]
    template, *command = service["command"]
    assert template == "users.acl.template"
    args = container["args"]
    # compose's command, then the name it announces: compose's is the container's hostname, here the pod's DNS name
    assert args[: len(command)] == command
    assert args[len(command) :] == ["--cluster-announce-hostname", f"$(POD_NAME).{spec['serviceName']}.{NAMESPACE}.svc"]
    env = {e["name"]: e["valueFrom"] for e in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert secret_env(container) == {"REDISCLI_AUTH": "REDIS_PASSWORD"}
    assert args[args.index("--cluster-enabled") + 1] == "yes" and args[args.index("--appendonly") + 1] == "yes"
    assert spec["replicas"] == 6, "3 masters, one replica each"
    [template_claim] = spec["volumeClaimTemplates"]
    assert {"name": template_claim["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]
    # the nodes find each other by name before they are ready; the bus port is open between them
    headless = one("cluster", "Service", spec["serviceName"])["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert {(p["port"], p["targetPort"]) for p in headless["ports"]} == {(6379, "redis"), (16379, "bus")}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"redis": 6379, "bus": 16379}
    # the init container does what compose's entrypoint does before redis-server
    for part in CLUSTER_NODE_ENTRYPOINT_PARTS:  # (compose's names the template of its command)
        assert part in init["command"][-1], part
        assert part.replace(f"/{template}", "/$$template") in service["entrypoint"][2], part
    assert set(secret_env(init)) == template_passwords(REDIS_DIR / "users.acl.template")


def test_each_cluster_node_renders_the_users_and_the_replication_password_into_memory(tmp_path):
    workdir = tmp_path / "pod"
    workdir.mkdir()
    acl = rendered_acl(CLUSTER, workdir, "cluster")
    env = {name: filled_secret("cluster")[name] for name in template_passwords(REDIS_DIR / "users.acl.template")}
    render = ["sh", str(REDIS_DIR / "render-acl.sh"), str(REDIS_DIR / "users.acl.template")]
    done = subprocess.run(render, env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, timeout=30)
    assert acl == done.stdout, "the users of the single Redis, on every node"
    masterauth = workdir / "acl" / "masterauth.conf"
    assert masterauth.read_text() == f'masterauth "{filled_secret("cluster")["REDIS_PASSWORD"]}"\n'
    assert masterauth.stat().st_mode & 0o077 == 0, "the password in the clear: for Redis's user alone"
    pod = one("cluster", *CLUSTER)["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}["acl"]
    assert volume["emptyDir"].get("medium") == "Memory"
    # the placeholders of the Secret as it is stop the node, as for the single Redis
    placeholder = tmp_path / "placeholder"
    placeholder.mkdir()
    refused = run_init_container(CLUSTER, placeholder, secret_values("cluster"), "cluster")
    assert refused.returncode == 1 and "is still a placeholder" in refused.stderr


def test_a_job_creates_the_cluster_of_the_statefulsets_pods_as_compose_does():
    statefulset = one("cluster", *CLUSTER)["spec"]
    job = one("cluster", "Job", "redis-cluster-create")["spec"]
    pod = job["template"]["spec"]
    [container] = pod["containers"]
    service = compose()["services"]["redis-cluster-create"]
    assert container["image"] == service["image"]
    nodes = [
        f"redis-cluster-{i}.{statefulset['serviceName']}.{NAMESPACE}.svc:6379" for i in range(statefulset["replicas"])
    ]
    assert container["command"] == [*service["command"][:2], *nodes]
    assert secret_env(container) == {"REDISCLI_AUTH": "REDIS_PASSWORD"}, "as the administrator"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["EMOTUNE_CLUSTER_REPLICAS"] == service["environment"]["EMOTUNE_CLUSTER_REPLICAS"] == "1"
    [mount] = container["volumeMounts"]
    volume = {v["name"]: v for v in pod["volumes"]}[mount["name"]]
    assert mount["mountPath"] == "/etc/emotune" and volume["configMap"]["name"] == "emotune-redis-acl"
    assert "cluster-create.sh" in one("cluster", "ConfigMap", "emotune-redis-acl")["data"]
    assert pod["restartPolicy"] == "OnFailure" and job["backoffLimit"] > 0


def test_each_service_connects_to_the_cluster_as_its_own_user(tmp_path):
    acl = rendered_acl(CLUSTER, tmp_path, "cluster")
    values = filled_secret("cluster")
    for name, container in emotune_containers("cluster").items():
        env = secret_env(container)
        if "REDIS_URL" not in env:
            assert name == "modelserver"
            continue
        url = urlsplit(values[env["REDIS_URL"]])
        assert (url.scheme, url.username, url.port, url.path) == ("redis+cluster", name, 6379, "/0"), name
        assert url.hostname == "redis-cluster", f"{name}: seeded by the Service of every node"
        assert_service_port("cluster", url.hostname, url.port)
        assert url.password == values[f"REDIS_{name.upper()}_PASSWORD"], name
        assert f"user {name} on #{sha256(url.password)} " in acl, name
        if "EMOTUNE_FRAMES_REDIS_URL" in env:  # the frames Redis stays one server
            assert values[env["EMOTUNE_FRAMES_REDIS_URL"]] == filled_secret()[env["EMOTUNE_FRAMES_REDIS_URL"]]


# --- containers ----------------------------------------------------------------------------------------------


UNITS = {"m": 1e-3, "": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}


def quantity(value: str | int) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(value)).groups()
    return float(number) * UNITS[unit]


def test_every_container_has_requests_limits_and_both_probes():
    for variant in VARIANTS:
        for workload, pod in pod_specs(variant):
            for container in containers(pod):
                where = f"{workload}/{container['name']}"
                resources = container.get("resources", {})
                for resource in ("cpu", "memory"):
                    request = quantity(resources["requests"][resource])
                    limit = quantity(resources["limits"][resource])
                    assert 0 < request <= limit, f"{where}: {resource} request {request} limit {limit}"
                if container in pod.get("initContainers", []) or workload in jobs(variant):
                    continue
                for probe in ("livenessProbe", "readinessProbe"):
                    assert probe in container, f"{where} has no {probe}"
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    action = container.get(probe, {})
                    port = (action.get("httpGet") or action.get("tcpSocket") or action.get("grpc") or {}).get("port")
                    assert port is None or has_port(pod, port), f"{where}: {probe} on an undeclared port {port}"


def test_the_services_probe_their_health_endpoints():
    expected = {name: 9100 for name in OPS_PORT_SERVICES} | {"gateway": 8000}
    for workload, pod in pod_specs("keda"):
        if workload not in expected:
            continue
        container = pod["containers"][0]
        ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            http = container[probe]["httpGet"]
            assert http["path"] == path, f"{workload} {probe}"
            assert ports.get(http["port"], http["port"]) == expected[workload], f"{workload} {probe}"


def test_every_container_runs_as_a_user_on_a_read_only_root():
    uid = int(re.search(r"--uid (\d+)", (ROOT / "services" / "gateway" / "Dockerfile").read_text()).group(1))
    for variant in VARIANTS:
        for workload, pod in pod_specs(variant):
            assert pod.get("automountServiceAccountToken") is False, workload
            for container in containers(pod):
                context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
                where = f"{workload}/{container['name']}"
                assert context.get("runAsNonRoot") is True, where
                assert context.get("readOnlyRootFilesystem") is True, where
                assert context.get("allowPrivilegeEscalation") is False, where
                assert context.get("capabilities", {}).get("drop") == ["ALL"], where
                if container["image"].startswith("emotune/"):
                    assert context.get("runAsUser") == uid, f"{where}: the Dockerfiles' user is {uid}"


# --- the same things as docker-compose.yml -------------------------------------------------------------------


def test_every_image_is_one_of_the_compose_files():
    allowed = set()
    for name, service in compose()["services"].items():
        if "image" in service:
            allowed.add(service["image"])
        if "build" in service:
            assert service["build"]["dockerfile"] == f"services/{name}/Dockerfile", name
            allowed.add(f"emotune/{name}:latest")
    for variant in VARIANTS:
        for workload, pod in pod_specs(variant):
            for container in containers(pod):
                assert container["image"] in allowed, (
                    f"{workload}: {container['image']} is not built or used by compose"
                )
                if container["image"].startswith("emotune/"):
                    assert container["image"] == f"emotune/{workload}:latest", workload


def test_the_emotune_containers_open_the_ports_their_dockerfiles_expose():
    for workload, pod in pod_specs("keda"):
        for container in pod["containers"]:
            if container["image"].startswith("emotune/"):
                dockerfile = (ROOT / "services" / workload / "Dockerfile").read_text()
                exposed = {int(p) for line in re.findall(r"^EXPOSE (.+)$", dockerfile, re.M) for p in line.split()}
                assert {p["containerPort"] for p in container["ports"]} == exposed, workload


def test_tensorflow_serving_runs_as_in_compose():
    service = compose()["services"]["tfserving"]
    pod = one("keda", "Deployment", "tfserving")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == service["image"]
    assert "command" not in container, "the image's entrypoint, as in compose"
    assert container["args"] == service["command"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mount = mounts[target]
        assert mount.get("readOnly") is True, target
        path = ROOT / source
        if path.is_file():  # a config file: the same text, from a ConfigMap
            configmap = one("keda", "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
            assert configmap["data"][mount["subPath"]] == path.read_text(), f"{target} differs from {source}"
        else:
            assert "persistentVolumeClaim" in volumes[mount["name"]], target


@pytest.mark.parametrize("server", sorted(REDIS_SERVERS), ids=lambda s: s[1])
def test_each_redis_runs_as_in_compose(server):
    service = compose()["services"][server[1]]
    pod = one("keda", *server)["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    [container] = pod["containers"]
    assert container["image"] == init["image"] == service["image"]
    # compose's entrypoint renders the template its command names first, then runs the rest of the command
    template, *command = service["command"]
    assert template == REDIS_SERVERS[server]
    assert container["args"] == command, f"the command of docker-compose.yml's {server[1]}"
    aclfile = command[command.index("--aclfile") + 1]
    assert re.search(rf"render-acl\.sh \S+ > {re.escape(aclfile)} ", service["entrypoint"][2])
    assert init["command"] == ["sh", "-c", f"sh /etc/emotune/render-acl.sh /etc/emotune/{template} > {aclfile}"]


@pytest.mark.parametrize("server", sorted(REDIS_SERVERS), ids=lambda s: s[1])
def test_each_redis_reads_its_users_from_an_acl_file_rendered_into_memory(server):
    pod = one("keda", *server)["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    [container] = pod["containers"]
    args = container["args"]
    assert "--requirepass" not in args
    aclfile = Path(args[args.index("--aclfile") + 1])
    volumes = {v["name"]: v for v in pod["volumes"]}

    def volume_of(c: dict, path: Path) -> dict:
        [mount] = [m for m in c["volumeMounts"] if path.is_relative_to(m["mountPath"])]
        return {**mount, **volumes[mount["name"]]}

    written, read = volume_of(init, aclfile), volume_of(container, aclfile)
    assert written["name"] == read["name"], "the server reads the file the init container writes"
    assert written["emptyDir"].get("medium") == "Memory" and read.get("readOnly") is True
    template = Path("/etc/emotune") / REDIS_SERVERS[server]
    assert init["command"][-1].endswith(f" {template} > {aclfile}")
    assert volume_of(init, template)["configMap"]["name"] == "emotune-redis-acl"
    assert volume_of(init, template.with_name("render-acl.sh"))["configMap"]["name"] == "emotune-redis-acl"
    names = template_passwords(REDIS_DIR / REDIS_SERVERS[server])
    assert set(secret_env(init)) == names, "the init container gets the passwords its template names, no more"
    assert secret_env(init) == {n: n for n in names}
    assert secret_env(container) == {"REDISCLI_AUTH": "REDIS_PASSWORD"}, "the server itself: the admin's, for probes"


def test_redis_keeps_its_data_with_aof_on_a_volume():
    redis = one("keda", "StatefulSet", "redis")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == compose()["services"]["redis"]["image"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    [template] = redis["spec"]["volumeClaimTemplates"]
    assert {"name": template["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]


def test_the_frames_redis_keeps_nothing_on_disk():
    frames = one("keda", "Deployment", "redis-frames")
    pod = frames["spec"]["template"]["spec"]
    [container] = pod["containers"]
    args = container["args"]
    assert args[args.index("--save") + 1] == "", "no RDB snapshots"
    assert args[args.index("--appendonly") + 1] == "no", "no AOF"
    # one server behind the Service, never two at once (they would split the stream)
    assert frames["spec"]["replicas"] == 1 and frames["spec"]["strategy"] == {"type": "Recreate"}
    [data] = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[data["name"]]["emptyDir"].get("medium") == "Memory", "its working directory is in memory"
    for name, volume in volumes.items():  # nothing of the pod is on a disk
        assert volume.get("emptyDir", {}).get("medium") == "Memory" or "configMap" in volume, name
    main = one("keda", "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    assert quantity(container["resources"]["limits"]["memory"]) < quantity(main["resources"]["limits"]["memory"])


def test_the_recommender_keeps_its_models_and_reads_the_data():
    settings = read_env_file(ROOT / "deploy" / "emotune.env")
    pod = one("keda", "Deployment", "recommender")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    models = mounts[settings["EMOTUNE_RECOMMENDER_MODEL_DIR"]]
    assert not models.get("readOnly") and "persistentVolumeClaim" in volumes[models["name"]]
    data = mounts[settings["EMOTUNE_DATA_DIR"]]
    assert data.get("readOnly") and "persistentVolumeClaim" in volumes[data["name"]]


# --- autoscaling ---------------------------------------------------------------------------------------------


#: The Redis Service KEDA reads each variant's shards from, and KEDA's scaler for it.
KEDA_REDIS = {
    "keda": ("redis-streams", "address", "redis"),
    "cluster": ("redis-cluster-streams", "addresses", "redis-cluster"),
}


@pytest.mark.parametrize("variant", sorted(KEDA_REDIS))
def test_keda_scales_the_inference_workers_on_the_pending_faces_of_every_shard_summed(variant):
    scaled = one(variant, "ScaledObject", "inference")["spec"]
    target = scaled["scaleTargetRef"]
    assert (target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment")) == ("apps/v1", "Deployment")
    assert one(variant, "Deployment", target["name"])["metadata"]["name"] == "inference"
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 10)
    # one trigger per shard of emotune:faces, named s0..s(N-1), on the inference group's pending entries
    shards = int(read_env_file(ROOT / "deploy" / "emotune.env")["EMOTUNE_STREAM_SHARDS"])
    kind, address_field, service = KEDA_REDIS[variant]
    triggers = scaled["triggers"]
    assert [t["name"] for t in triggers] == [f"s{shard}" for shard in range(shards)]
    assert [t["metadata"]["stream"] for t in triggers] == [shard_stream(FACES, shard) for shard in range(shards)]
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert trigger["type"] == kind
        assert metadata["consumerGroup"] == INFERENCE_GROUP
        host, port = metadata[address_field].rsplit(":", 1)
        assert host.partition(".")[0] == service
        assert_service_port(variant, host, int(port))
        auth = one(variant, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert trigger["authenticationRef"].get("kind", "TriggerAuthentication") == "TriggerAuthentication"
        [ref] = auth["spec"]["secretTargetRef"]
        assert (ref["parameter"], ref["key"]) == ("password", "REDIS_PASSWORD")
        assert ref["key"] in one(variant, "Secret", ref["name"])["stringData"]
    # an HPA over several metrics takes the largest: the formula makes one metric, the sum over every shard
    modifiers = scaled["advanced"]["scalingModifiers"]
    terms = [term.strip() for term in modifiers["formula"].split("+")]
    assert sorted(terms) == sorted(t["name"] for t in triggers), "every shard summed, once"
    assert modifiers.get("metricType", "AverageValue") == "AverageValue"  # the sum per replica
    target_per_replica = float(modifiers["target"])
    assert target_per_replica > 0
    assert all(float(t["metadata"]["pendingEntriesCount"]) == target_per_replica for t in triggers)


def test_the_keda_manifests_are_generated_from_the_number_of_shards():
    """render_settings.py writes them (--check in test_the_generated_configmaps_are_up_to_date); its shard names
    are emotune_common.shards' for any number of shards."""
    sys.path.insert(0, str(K8S))
    try:
        import render_settings
    finally:
        sys.path.remove(str(K8S))
    assert all(render_settings.shard_stream(FACES, n) == shard_stream(FACES, n) for n in (0, 3, 15, 99))
    assert (render_settings.FACES, render_settings.INFERENCE_GROUP) == (FACES, INFERENCE_GROUP)
    for path, variant in render_settings.KEDA_VARIANTS.items():
        [_, scaled] = yaml.safe_load_all(render_settings.render_keda(3, variant))
        assert scaled["spec"]["advanced"]["scalingModifiers"]["formula"] == "s0 + s1 + s2"
        assert path.read_text() == render_settings.render_keda(
            int(read_env_file(ROOT / "deploy" / "emotune.env")["EMOTUNE_STREAM_SHARDS"]), variant
        )


def test_the_hpa_fallback_scales_the_inference_workers_on_cpu_within_the_same_bounds():
    [hpa] = objects("hpa", "HorizontalPodAutoscaler")
    scaled = one("keda", "ScaledObject", "inference")["spec"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "inference"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        scaled["minReplicaCount"],
        scaled["maxReplicaCount"],
    )
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    inference = one("hpa", "Deployment", "inference")["spec"]["template"]["spec"]["containers"][0]
    assert "cpu" in inference["resources"]["requests"], "a CPU utilisation target needs a CPU request"


# --- kustomize itself, where it is installed -----------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kubectl_kustomize_builds_the_same_objects(variant):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the build above stands in for kustomize")
    done = subprocess.run([kubectl, "kustomize", str(VARIANTS[variant])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    by_key = {key(o): o for o in yaml.safe_load_all(done.stdout) if o}
    assert by_key == {key(o): o for o in objects(variant)}
