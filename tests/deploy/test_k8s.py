"""deploy/k8s must be a valid Kubernetes deployment of what docker-compose.yml runs, checked offline.

Both variants are built as kustomize builds them (deploy/k8s: KEDA; deploy/k8s/hpa: a CPU HPA instead), every
object is validated strictly against the Kubernetes schemas bundled in kubernetes-validate, and the KEDA objects
against the CRDs vendored in deploy/k8s/schemas with jsonschema. Nothing is downloaded: the network is closed
to this module.
"""

from __future__ import annotations

import copy
import functools
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

from emotune_common.streams import FACES
from emotune_inference.__main__ import GROUP as INFERENCE_GROUP

from ..conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
VARIANTS = {"keda": K8S, "hpa": K8S / "hpa"}
NAMESPACE = "emotune"
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
WORKLOADS = {"Deployment", "StatefulSet"}
#: The oldest Kubernetes the manifests are written for (autoscaling/v2, grpc probes GA) and the newest known.
KUBERNETES_VERSIONS = ("1.29", latest_version())
#: The services whose ops server (emotune_common.lifecycle.serve_ops) listens on EMOTUNE_METRICS_PORT.
OPS_PORT_SERVICES = {"capture", "inference", "recommender", "modelserver"}


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
    unknown = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not unknown, f"{directory}: this test builds kustomizations of `resources:` only, not {unknown}"
    assert kustomization["kind"] == "Kustomization"
    objects: list[dict] = []
    for entry in kustomization["resources"]:
        path = (directory / entry).resolve()
        objects += build(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    return objects


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
    """Every object of either variant, once."""
    seen: dict[tuple, dict] = {}
    for variant in VARIANTS:
        for o in objects(variant):
            seen.setdefault(key(o), o)
    return list(seen.values())


def key(o: dict) -> tuple[str, str, str]:
    return o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]


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

    for directory in VARIANTS.values():
        walk(directory)
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
    checked = 0
    for o in all_objects():
        if o["kind"] in KEDA_KINDS:
            continue
        try:  # strict: unknown fields are errors, as with kubectl apply --validate=strict
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{key(o)}: {'.'.join(map(str, e.path))}: {e.message}")
        checked += 1
    assert checked >= 15


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


def test_the_keda_objects_are_valid_against_keda_crds():
    keda = objects("keda", *KEDA_KINDS)
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


def test_render_settings_agrees():
    done = subprocess.run([sys.executable, str(K8S / "render_settings.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_emotune_container_reads_the_settings_then_the_secret():
    for name, pod in pod_specs("keda"):
        for container in containers(pod):
            if container["image"].startswith("emotune/"):
                # the Secret last: its REDIS_URL (with the password) wins over any in the ConfigMap
                assert container.get("envFrom") == [
                    {"configMapRef": {"name": "emotune-settings"}},
                    {"secretRef": {"name": "emotune-secrets"}},
                ], name


def test_the_secret_template_holds_the_secrets_and_a_redis_url_that_matches():
    secret = one("keda", "Secret", "emotune-secrets")
    values = secret["stringData"]
    assert set(values) == {"REDIS_PASSWORD", "REDIS_URL", "SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET"}
    url = urlsplit(values["REDIS_URL"])
    assert (url.scheme, url.password, url.path) == ("redis", values["REDIS_PASSWORD"], "/0")
    assert_service_port("keda", url.hostname, url.port)
    redis = one("keda", "StatefulSet", "redis")["spec"]["template"]["spec"]["containers"][0]
    assert redis["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    assert {"name": "emotune-secrets", "key": "REDIS_PASSWORD"} in [
        e["valueFrom"]["secretKeyRef"] for e in redis["env"] if e["name"] == "REDIS_PASSWORD"
    ]


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
                if container in pod.get("initContainers", []):
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


def test_redis_keeps_its_data_with_aof_on_a_volume():
    redis = one("keda", "StatefulSet", "redis")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == compose()["services"]["redis"]["image"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    [template] = redis["spec"]["volumeClaimTemplates"]
    assert {"name": template["metadata"]["name"], "mountPath": "/data"} in container["volumeMounts"]


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


def test_keda_scales_the_inference_workers_on_the_pending_faces_of_their_group():
    scaled = one("keda", "ScaledObject", "inference")["spec"]
    target = scaled["scaleTargetRef"]
    assert (target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment")) == ("apps/v1", "Deployment")
    assert one("keda", "Deployment", target["name"])["metadata"]["name"] == "inference"
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 10)
    [trigger] = scaled["triggers"]
    metadata = trigger["metadata"]
    assert trigger["type"] == "redis-streams"
    assert (metadata["stream"], metadata["consumerGroup"]) == (FACES, INFERENCE_GROUP)
    assert int(metadata["pendingEntriesCount"]) > 0
    host, port = metadata["address"].rsplit(":", 1)
    assert_service_port("keda", host, int(port))
    auth = one("keda", "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert trigger["authenticationRef"].get("kind", "TriggerAuthentication") == "TriggerAuthentication"
    [ref] = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "password"
    assert ref["key"] in one("keda", "Secret", ref["name"])["stringData"]
    assert ref["key"] == "REDIS_PASSWORD"


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
