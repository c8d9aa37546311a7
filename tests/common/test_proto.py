"""The generated protobuf code must match proto/: editing a .proto without `make proto` fails here.

protoc runs in a process of its own: grpc_tools' protoc and TensorFlow's protobuf do not share
a process safely (a segfault when TensorFlow was imported first).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from ..conftest import ROOT


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_committed_code_matches_the_protos():
    done = check()
    assert done.returncode == 0, done.stderr


def test_an_edited_proto_is_detected(tmp_path):
    protos = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", protos)
    path = protos / "emotune" / "v1" / "messages.proto"
    path.write_text(
        path.read_text().replace("uint64 frame_number = 4;", "uint64 frame_number = 4;\n  string note = 9;", 1)
    )
    done = check("--proto-root", str(protos))
    assert done.returncode == 1 and "emotune/v1/messages_pb2.py" in done.stderr


def test_a_stray_generated_file_is_detected(tmp_path):
    committed = tmp_path / "common"
    shutil.copytree(ROOT / "services" / "common" / "emotune", committed / "emotune",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (committed / "emotune" / "v1" / "old_pb2.py").write_text("")
    done = check("--out", str(committed))
    assert done.returncode == 1 and "emotune/v1/old_pb2.py" in done.stderr
