"""The generated protobuf code must match proto/: editing a .proto without `make proto` fails here."""

from __future__ import annotations

import importlib.util
import shutil

from ..conftest import ROOT

spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
gen_proto = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_proto)


def test_committed_code_matches_the_protos():
    assert gen_proto.stale_files() == []


def test_an_edited_proto_is_detected(tmp_path):
    protos = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", protos)
    path = protos / "emotune" / "v1" / "messages.proto"
    path.write_text(
        path.read_text().replace("uint64 frame_number = 4;", "uint64 frame_number = 4;\n  string note = 9;", 1)
    )
    assert "emotune/v1/messages_pb2.py" in gen_proto.stale_files(proto_root=protos)


def test_a_stray_generated_file_is_detected(tmp_path):
    committed = tmp_path / "common"
    shutil.copytree(
        ROOT / "services" / "common" / "emotune", committed / "emotune", ignore=shutil.ignore_patterns("__pycache__")
    )
    (committed / "emotune" / "v1" / "old_pb2.py").write_text("")
    assert gen_proto.stale_files(committed=committed) == ["emotune/v1/old_pb2.py"]
