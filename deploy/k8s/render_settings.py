"""Write the generated ConfigMaps of base/ from the files under deploy/ that docker-compose.yml reads as they are.

    python deploy/k8s/render_settings.py          # rewrite base/settings.yaml and base/redis-acl.yaml
    python deploy/k8s/render_settings.py --check  # exit 1 when either does not match its source

- base/settings.yaml, the ConfigMap emotune-settings, from deploy/emotune.env (every setting, one source of truth);
- base/redis-acl.yaml, the ConfigMap emotune-redis-acl, from deploy/redis/ (the ACL templates of both Redis
  servers and render-acl.sh, which their init containers run).

Kustomize's configMapGenerator cannot read ../emotune.env or ../../redis/ (it refuses files outside the
kustomization's folder unless every user passes --load-restrictor), so the ConfigMaps are plain manifests rendered
from those files; tests/deploy/test_k8s.py fails when they differ. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_FILE = HERE.parent / "emotune.env"
REDIS_DIR = HERE.parent / "redis"
SETTINGS_MANIFEST = HERE / "base" / "settings.yaml"
REDIS_ACL_MANIFEST = HERE / "base" / "redis-acl.yaml"
KEY = re.compile(r"[A-Z_][A-Z0-9_]*")

SETTINGS_HEADER = """\
# GENERATED from deploy/emotune.env by deploy/k8s/render_settings.py: edit the env file, then run the script.
# Every emotune container reads it with envFrom; its secrets (REDIS_URL, ...) come from the Secret
# emotune-secrets, one env entry each. A changed setting reaches running pods at their next start:
#   kubectl -n emotune rollout restart deployment
"""

REDIS_ACL_HEADER = """\
# GENERATED from deploy/redis/ by deploy/k8s/render_settings.py: edit those files, then run the script.
# The Redis users of docker-compose.yml, for both Redis servers (redis.yaml, redis-frames.yaml): their init
# container runs render-acl.sh on a template with the passwords of the Secret emotune-secrets and writes the
# ACL file (only SHA-256 hashes) into a memory emptyDir, which redis-server reads with --aclfile. A changed
# template or password takes effect at the servers' next start:
#   kubectl -n emotune rollout restart statefulset redis && kubectl -n emotune rollout restart deployment redis-frames
"""


def read_env(path: Path = ENV_FILE) -> dict[str, str]:
    """KEY=VALUE lines in order; blank lines and # comments skipped. Values are taken literally (no quotes,
    no inline comments), the one reading that docker compose, kustomize and kubectl all agree on."""
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not KEY.fullmatch(key):
            raise ValueError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        if value[:1] in ("'", '"'):
            raise ValueError(f"{path}:{number}: quoted values are read differently by each tool: {line!r}")
        if key in settings:
            raise ValueError(f"{path}:{number}: {key} is set twice")
        settings[key] = value
    return settings


def read_files(directory: Path = REDIS_DIR) -> dict[str, str]:
    """Every file of a folder by name, in name order (ConfigMap keys)."""
    return {p.name: p.read_text() for p in sorted(directory.iterdir()) if p.is_file()}


def configmap(header: str, name: str, entries: list[str]) -> str:
    lines = [
        header.rstrip("\n"),
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: {name}",
        "  namespace: emotune",
        "  labels:",
        "    app.kubernetes.io/part-of: emotune",
        "data:",
        *entries,
    ]
    return "\n".join(lines) + "\n"


def block(key: str, text: str) -> str:
    """`key: |` and the text indented, readable in the manifest, when YAML gives that back unchanged: one final
    newline, no line of blanks only, nothing unprintable, no leading blank. Otherwise a JSON string (also YAML)."""
    lines = text[:-1].split("\n") if text.endswith("\n") else []
    literal = (
        bool(lines)
        and not text.endswith("\n\n")
        and not text[0].isspace()
        and all(line.strip() or not line for line in lines)
        and all(c.isprintable() or c == "\t" for line in lines for c in line)
    )
    if not literal:
        return f"  {key}: {json.dumps(text)}"
    return "\n".join([f"  {key}: |", *(f"    {line}" if line else "" for line in lines)])


def render_settings(settings: dict[str, str]) -> str:
    return configmap(SETTINGS_HEADER, "emotune-settings", [f"  {k}: {json.dumps(v)}" for k, v in settings.items()])


def render_redis_acl(files: dict[str, str]) -> str:
    return configmap(REDIS_ACL_HEADER, "emotune-redis-acl", [block(k, v) for k, v in files.items()])


def main(argv: list[str]) -> int:
    manifests = {
        SETTINGS_MANIFEST: render_settings(read_env()),
        REDIS_ACL_MANIFEST: render_redis_acl(read_files()),
    }
    if "--check" in argv:
        stale = [path for path, text in manifests.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path} is out of date: python {Path(__file__).name}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in manifests.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
