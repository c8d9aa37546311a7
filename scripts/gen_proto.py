"""Generate the Python code of proto/ into services/common (``make proto``), or check it (``--check``).

``--check`` generates into a temporary folder and fails when any file differs from the committed
one, so a .proto edited without ``make proto`` fails the tests.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "services" / "common"
PACKAGE = Path("emotune") / "v1"


def generate(out: Path) -> list[Path]:
    """Run protoc over every .proto; return the generated files relative to ``out``."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    (out / PACKAGE).mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for pkg in (out / "emotune", out / PACKAGE):
        (pkg / "__init__.py").write_text('"""Generated from proto/ by `make proto`; do not edit."""\n')
    return sorted(
        p.relative_to(out) for p in (out / "emotune").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    if not args.check:
        for path in generate(OUT):
            print(f"generated services/common/{path}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        expected = generate(Path(tmp))
        committed = sorted(
            p.relative_to(OUT) for p in (OUT / "emotune").rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
        stale = [
            str(p) for p in expected if not (OUT / p).exists() or not filecmp.cmp(Path(tmp) / p, OUT / p, shallow=False)
        ]
        extra = [str(p) for p in committed if p not in expected]
    if stale or extra:
        print(
            f"generated protobuf code is out of date (run `make proto`): stale {stale}, extra {extra}", file=sys.stderr
        )
        return 1
    print(f"protobuf code matches proto/ ({len(expected)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
