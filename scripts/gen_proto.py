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


def generated_files(out: Path) -> list[Path]:
    """The generated files under ``out``, relative to it."""
    tree = out / "emotune"
    return sorted(p.relative_to(out) for p in tree.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def generate(out: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc over every .proto; return the generated files relative to ``out``."""
    protos = sorted(str(p.relative_to(proto_root)) for p in (proto_root / PACKAGE).glob("*.proto"))
    (out / PACKAGE).mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{proto_root}", f"-I{well_known}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", *protos]  # fmt: skip
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in (out / "emotune", out / PACKAGE):
        (package / "__init__.py").write_text('"""Generated from proto/ by `make proto`; do not edit."""\n')
    return generated_files(out)


def stale_files(committed: Path = OUT, proto_root: Path = PROTO_ROOT) -> list[str]:
    """Generated files that differ from, are missing from, or are extra in ``committed``."""
    with tempfile.TemporaryDirectory() as tmp:
        expected = generate(Path(tmp), proto_root)
        differ = [
            str(p)
            for p in expected
            if not (committed / p).exists() or not filecmp.cmp(Path(tmp) / p, committed / p, shallow=False)
        ]
    return differ + [str(p) for p in generated_files(committed) if p not in expected]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    parser.add_argument("--proto-root", type=Path, default=PROTO_ROOT, help="where the .proto files are")
    parser.add_argument("--out", type=Path, default=OUT, help="where the generated package is (emotune/)")
    args = parser.parse_args()
    if not args.check:
        for path in generate(args.out, args.proto_root):
            print(f"generated {args.out / path}")
        return 0
    stale = stale_files(args.out, args.proto_root)
    if stale:
        print(f"generated protobuf code is out of date, run `make proto`: {stale}", file=sys.stderr)
        return 1
    print("protobuf code matches proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
