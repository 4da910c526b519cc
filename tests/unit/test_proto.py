"""The committed gRPC modules are what orders.proto generates with the pinned compiler (make proto)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path("orderfast/rpc/v1/orders.proto")
GENERATED = ("orders_pb2.py", "orders_pb2.pyi", "orders_pb2_grpc.py")


def test_the_generated_modules_match_the_proto(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / PROTO.parent).mkdir(parents=True)
    shutil.copy(ROOT / "python" / PROTO, source / PROTO)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{source}",
            f"--python_out={source}",
            f"--pyi_out={source}",
            f"--grpc_python_out={source}",
            str(source / PROTO),
        ],
        check=True,
        capture_output=True,
    )
    for name in GENERATED:
        committed = (ROOT / "python" / PROTO.parent / name).read_text()
        assert (source / PROTO.parent / name).read_text() == committed, f"{name} is stale: run make proto"
