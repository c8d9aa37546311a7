"""The embedded run, compose and Kubernetes use the same settings: every setting a service reads is
given to it by compose (deploy/emotune.env or its environment) and by the Kubernetes ConfigMap or
Secret, nothing is given that no service reads, and the README documents every one."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from pydantic_settings import BaseSettings

from emotune_capture.settings import CaptureSettings
from emotune_common.settings import StreamSettings
from emotune_gateway.settings import GatewaySettings
from emotune_inference.settings import InferenceSettings
from emotune_modelserver.settings import ModelServerSettings
from emotune_recommender.settings import RecommenderSettings

from ..conftest import ROOT
from .test_compose import all_profiles_config

SERVICES: dict[str, type[BaseSettings]] = {
    "modelserver": ModelServerSettings,
    "capture": CaptureSettings,
    "inference": InferenceSettings,
    "recommender": RecommenderSettings,
    "gateway": GatewaySettings,
}
#: Read by a setting's default rather than a field: emotune_common.settings.default_data_dir.
EXTRA = {"EMOTUNE_DATA_DIR"}


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (nested StreamSettings included)."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        if field.annotation is StreamSettings:
            names |= env_names(StreamSettings)
        elif isinstance(field.validation_alias, str):
            names.add(field.validation_alias)
        else:
            names.add((prefix + name).upper())
    return names | EXTRA


def env_file(path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


READ = {service: env_names(cls) for service, cls in SERVICES.items()}
ALL_READ = set().union(*READ.values())
SECRETS = {"REDIS_URL", "EMOTUNE_FRAMES_REDIS_URL", "SPOTIPY_CLIENT_ID", "SPOTIPY_CLIENT_SECRET"}
#: The secrets that carry a Redis URL (and so a user and its password), and the Redis Service each leads to.
REDIS_URLS = {"REDIS_URL": "redis", "EMOTUNE_FRAMES_REDIS_URL": "redis-frames"}


def test_the_env_file_holds_every_setting_but_the_secrets_and_nothing_else():
    given = set(env_file(ROOT / "deploy" / "emotune.env"))
    assert ALL_READ - SECRETS - given == set(), "settings missing from deploy/emotune.env"
    assert given - ALL_READ == set(), "deploy/emotune.env sets what no service reads"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_gives_each_service_what_it_reads_and_nothing_unknown(service):
    environment = set(all_profiles_config()["services"][service]["environment"])
    needs = READ[service] - ({"REDIS_URL"} if service == "modelserver" else set())
    assert needs - environment == set(), f"{service}: not given by compose"
    assert environment - ALL_READ == set(), f"{service}: compose sets what no service reads"


def kubernetes_objects() -> list[dict]:
    """Every object of deploy/k8s, but the patches of an overlay (deploy/k8s/cluster's Secret with cluster URLs:
    tests/deploy/test_k8s.py checks each variant as built)."""
    import yaml

    k8s = ROOT / "deploy" / "k8s"
    patches = {(k.parent / e["path"]).resolve() for k in k8s.rglob("kustomization.yaml")
               for e in yaml.safe_load(k.read_text()).get("patches", []) if "path" in e}  # fmt: skip
    files = [p for p in sorted(k8s.rglob("*.yaml")) if p.resolve() not in patches]
    return [d for p in files for d in yaml.safe_load_all(p.read_text()) if isinstance(d, dict) and "kind" in d]


def emotune_containers(objects: list[dict]) -> dict[str, dict]:
    """emotune's own container of each workload, by service (its image's name)."""
    found = {}
    for o in objects:
        for container in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if container["image"].startswith("emotune/"):
                found[container["image"].removeprefix("emotune/").partition(":")[0]] = container
    return found


def test_kubernetes_gives_every_setting_and_nothing_unknown():
    objects = kubernetes_objects()
    [secret] = [o for o in objects if o["kind"] == "Secret"]
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    configmaps = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "emotune-settings"]
    given = set(configmaps[0]["data"]) if configmaps else set(env_file(ROOT / "deploy" / "emotune.env"))
    assert ALL_READ - SECRETS - given == set()
    assert given - ALL_READ == set()
    containers = emotune_containers(objects)
    assert set(containers) == set(SERVICES)
    for service, container in containers.items():
        # the settings for all; the secrets one by one, each service only those it reads
        assert container.get("envFrom") == [{"configMapRef": {"name": "emotune-settings"}}], service
        env = {e["name"]: e for e in container.get("env", [])}
        assert set(env) - ALL_READ == set(), f"{service}: {set(env) - ALL_READ}"
        needs = READ[service] & SECRETS - ({"REDIS_URL"} if service == "modelserver" else set())
        assert set(env) == needs, f"{service}: secrets given {sorted(env)}, read {sorted(needs)}"
        for name, entry in env.items():
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in values, f"{service}: {name}"
            if name in REDIS_URLS:  # its own user, on the Redis of that setting
                url = urlsplit(values[ref["key"]])
                assert (url.username, url.hostname) == (service, REDIS_URLS[name]), f"{service}: {name}"


def test_the_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`((?:EMOTUNE_|SPOTIPY_)[A-Z_]+|REDIS_URL|MODEL_SERVER)`", readme))
    # a row may abbreviate siblings: `EMOTUNE_DETECT_SCALE_FACTOR`, `_MIN_NEIGHBORS`
    for row in re.findall(r"^\| `(EMOTUNE_[A-Z_]+)`((?:, `_[A-Z_]+`)+)", readme, re.M):
        stem = row[0].rsplit("_", 2)[0]
        documented |= {stem + s for s in re.findall(r"`(_[A-Z_]+)`", row[1])}
    assert ALL_READ - documented == set(), "settings missing from the README's table"
