"""Write base/settings.yaml, the ConfigMap emotune-settings, from deploy/emotune.env (the one source of truth).

    python deploy/k8s/render_settings.py          # rewrite base/settings.yaml
    python deploy/k8s/render_settings.py --check  # exit 1 when base/settings.yaml does not match the env file

Kustomize's configMapGenerator cannot read ../emotune.env (it refuses files outside the kustomization's
folder unless every user passes --load-restrictor), so the ConfigMap is a plain manifest rendered from the
env file; tests/deploy/test_k8s.py fails when the two differ. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_FILE = HERE.parent / "emotune.env"
MANIFEST = HERE / "base" / "settings.yaml"
KEY = re.compile(r"[A-Z_][A-Z0-9_]*")

HEADER = """\
# GENERATED from deploy/emotune.env by deploy/k8s/render_settings.py: edit the env file, then run the script.
# Every Deployment reads it with envFrom (then the Secret emotune-secrets). A changed setting reaches running
# pods at their next start: kubectl -n emotune rollout restart deployment
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


def render(settings: dict[str, str]) -> str:
    lines = [
        HEADER.rstrip("\n"),
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: emotune-settings",
        "  namespace: emotune",
        "  labels:",
        "    app.kubernetes.io/part-of: emotune",
        "data:",
    ]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render(read_env())
    if "--check" in argv:
        if MANIFEST.read_text() != text:
            print(f"{MANIFEST} is out of date: python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    MANIFEST.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
