"""The observability profile: Prometheus scrapes every service that exposes metrics, on the port and path
the service really serves, and the Grafana dashboard asks only for metrics the services define.

Checked without Prometheus, Grafana or Docker (promtool is not installed): the configs are parsed, the paths
are requested from the services' own ASGI apps, and the metric names come from the services' own
prometheus_client registries.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from ..conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS_YML = OBSERVABILITY / "prometheus.yml"
GRAFANA = OBSERVABILITY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "emotune.json"
TFSERVING_MONITORING = OBSERVABILITY / "tfserving-monitoring.config"

# The services built from this repository, each of which serves /metrics (the gateway on its API port).
METRICS_SERVICES = {"capture", "inference", "recommender", "gateway", "modelserver"}
METRICS_MODULES = [
    "emotune_common.metrics",
    "emotune_capture.metrics",
    "emotune_inference.metrics",
    "emotune_recommender.metrics",
    "emotune_gateway.metrics",
    "emotune_modelserver.metrics",
]
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}  # made by Prometheus itself
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                "unless", "inf", "nan"}  # fmt: skip


def compose_services() -> dict[str, dict]:
    """The compose file as written: every service, whatever its profile."""
    return yaml.safe_load(COMPOSE.read_text())["services"]


def scrape_jobs() -> dict[str, dict]:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    names = [job["job_name"] for job in config["scrape_configs"]]
    assert len(names) == len(set(names)), f"duplicate job names: {names}"
    return {job["job_name"]: job for job in config["scrape_configs"]}


def job_targets(job: dict) -> list[tuple[str, int]]:
    """(host, port) of a job's static targets and DNS-discovered names."""
    targets = []
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            targets.append((host, int(port)))
    for dns in job.get("dns_sd_configs", []):
        assert dns.get("type", "SRV") == "A", "compose's DNS has A records, no SRV records"
        targets += [(name, int(dns["port"])) for name in dns["names"]]
    assert targets, f"job {job['job_name']} has no targets"
    return targets


def dockerfile_env(path: Path) -> dict[str, str]:
    """The ENV settings of a Dockerfile (KEY=VALUE form, continuation lines joined)."""
    text = path.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line[4:].split() if "=" in pair)
    return env


def listening_port(name: str, service: dict) -> int:
    env = dockerfile_env(ROOT / service["build"]["dockerfile"])
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    return int(env["EMOTUNE_GATEWAY_PORT" if name == "gateway" else "EMOTUNE_METRICS_PORT"])


def mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (relative to the repository root) of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = source[2:]
    return found


def test_the_prometheus_config_scrapes_every_service_that_exposes_metrics():
    jobs = scrape_jobs()
    services = compose_services()
    built = {name for name, service in services.items() if "build" in service}
    assert built == METRICS_SERVICES, "a service was added or removed: scrape it in prometheus.yml"
    assert METRICS_SERVICES | {"prometheus"} <= set(jobs)
    for name, job in jobs.items():
        for host, _ in job_targets(job):
            assert host in services or (name == "prometheus" and host == "localhost"), f"{name}: no service {host}"


def test_every_job_scrapes_the_port_its_service_listens_on():
    jobs, services = scrape_jobs(), compose_services()
    for name in METRICS_SERVICES:
        assert job_targets(jobs[name]) == [(name, listening_port(name, services[name]))], name


def test_replicas_are_discovered_by_dns():
    """`--scale inference=N`: every replica is scraped, not one of them picked by the service name."""
    assert "dns_sd_configs" in scrape_jobs()["inference"]


def test_the_metrics_paths_are_served_without_a_redirect():
    from emotune_common.lifecycle import ops_app
    from emotune_gateway.app import create_app
    from emotune_gateway.settings import GatewaySettings

    async def ready() -> bool:
        return True

    jobs = scrape_jobs()
    ops = TestClient(ops_app(ready))
    for name in METRICS_SERVICES - {"gateway"}:
        response = ops.get(jobs[name].get("metrics_path", "/metrics"), follow_redirects=False)
        assert response.status_code == 200, f"{name}: {response.status_code}"
        assert "# TYPE emotune_stream_published_total counter" in response.text
    gateway = TestClient(create_app(GatewaySettings()))  # no lifespan: /metrics needs no Redis
    response = gateway.get(jobs["gateway"].get("metrics_path", "/metrics"), follow_redirects=False)
    assert response.status_code == 200, response.status_code
    assert "# TYPE emotune_gateway_frames_total counter" in response.text


def test_tensorflow_serving_is_scraped_where_its_monitoring_config_exports():
    job = scrape_jobs()["tfserving"]
    exported = re.search(r'path:\s*"([^"]+)"', TFSERVING_MONITORING.read_text())
    assert exported and re.search(r"enable:\s*true", TFSERVING_MONITORING.read_text())
    assert job["metrics_path"] == exported.group(1)
    service = compose_services()["tfserving"]
    flags = dict(arg.lstrip("-").split("=", 1) for arg in service["command"])
    assert job_targets(job) == [("tfserving", int(flags["rest_api_port"]))]  # metrics are on the REST port
    if "monitoring_config_file" in flags:
        assert mounts(service)[flags["monitoring_config_file"]] == str(TFSERVING_MONITORING.relative_to(ROOT))


def observability_services() -> tuple[dict, dict]:
    services = compose_services()
    if "prometheus" not in services:
        pytest.skip("docker-compose.yml has no observability profile")
    return services["prometheus"], services["grafana"]


def test_the_observability_profile_mounts_these_configs():
    prometheus, grafana = observability_services()
    assert prometheus["profiles"] == grafana["profiles"] == ["observability"]
    config_file = dict(arg.lstrip("-").split("=", 1) for arg in prometheus["command"])["config.file"]
    assert mounts(prometheus)[config_file] == str(PROMETHEUS_YML.relative_to(ROOT))
    provisioning = mounts(grafana)["/etc/grafana/provisioning"]
    assert provisioning == str(GRAFANA.relative_to(ROOT))
    # TF Serving exports metrics only with the monitoring config: its job would be always down without it.
    tfserving = dict(arg.lstrip("-").split("=", 1) for arg in compose_services()["tfserving"]["command"])
    assert "monitoring_config_file" in tfserving, "tfserving needs --monitoring_config_file for its scrape job"


def test_grafana_provisions_the_prometheus_data_source_and_this_dashboard():
    datasources = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert [(d["type"], d["url"]) for d in datasources] == [("prometheus", "http://prometheus:9090")]
    providers = yaml.safe_load((GRAFANA / "dashboards" / "provider.yml").read_text())["providers"]
    # The grafana/ folder is mounted at /etc/grafana/provisioning: the provider reads the dashboards there.
    container_path = "/etc/grafana/provisioning/" + str(DASHBOARD.parent.relative_to(GRAFANA))
    assert [(p["type"], p["options"]["path"]) for p in providers] == [("file", container_path)]

    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert panels and len({p["id"] for p in panels}) == len(panels)
    uids = {d["uid"] for d in datasources}
    for panel in panels:
        assert {"type", "title", "gridPos", "targets"} <= set(panel), panel.get("title")
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] in uids, panel["title"]


def defined_series() -> set[str]:
    """Every series name the services' registries can expose, with the suffixes Prometheus sees."""
    from prometheus_client import REGISTRY

    for module in METRICS_MODULES:
        importlib.import_module(module)
    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"],
                "summary": ["", "_count", "_sum", "_created"], "info": ["_info"]}  # fmt: skip
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
        names |= {sample.name for sample in family.samples}
    return names


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, keywords and label names left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges, subqueries
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    identifiers = re.findall(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", expr)
    return {name for name in identifiers if name.lower() not in PROMQL_WORDS}


def test_metric_names_are_extracted_from_promql():
    expr = 'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x"}[$__rate_interval]))) / on(job) b > bool 1e3'
    assert metric_names(expr) == {"a_bucket", "b"}


def test_the_dashboard_asks_only_for_metrics_the_services_define():
    defined = defined_series() | PROMETHEUS_SERIES
    used: set[str] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']}"
            assert names <= defined, f"{panel['title']}: undefined {names - defined}"
            used |= names
    # The pipeline's health at a glance: faces in, latency, the streams' backlog and losses, the outputs.
    assert {
        "emotune_capture_faces_total",
        "emotune_inference_end_to_end_seconds_bucket",
        "emotune_stream_pending",
        "emotune_stream_consumer_lag",
        "emotune_stream_dead_lettered_total",
        "emotune_stream_dropped_total",
        "emotune_recommender_recommend_seconds_bucket",
        "emotune_gateway_recommend_seconds_bucket",
        "emotune_gateway_subscribers",
        "emotune_gateway_delivery_seconds_bucket",
        "emotune_gateway_frames_total",
    } <= used
