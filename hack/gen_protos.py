"""Generate model_server/proto/*_pb2*.py(i) from the .proto files beside them.

    python hack/gen_protos.py          # regenerate
    python hack/gen_protos.py --check  # fail when the committed files differ (CI, `make lint`)

The sources are staged under modelship_server/proto/ so generated imports are package-absolute.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "model_server" / "proto"
PACKAGE = Path("modelship_server") / "proto"
WITH_GRPC = {"grpc_predict_v2.proto"}


def generate(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        (src / PACKAGE).mkdir(parents=True)
        gen = Path(tmp) / "gen"
        gen.mkdir()
        includes = Path(grpc_tools.__file__).parent / "_proto"
        for proto in sorted(PROTO_DIR.glob("*.proto")):
            shutil.copy(proto, src / PACKAGE / proto.name)
            args = [
                "protoc",
                f"-I{src}",
                f"-I{includes}",
                f"--python_out={gen}",
                f"--pyi_out={gen}",
            ]
            if proto.name in WITH_GRPC:
                args.append(f"--grpc_python_out={gen}")
            args.append(str(PACKAGE / proto.name))
            if protoc.main(args) != 0:
                raise SystemExit(f"protoc failed on {proto.name}")
        for file in sorted((gen / PACKAGE).iterdir()):
            shutil.copy(file, out / file.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if not args.check:
        generate(PROTO_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [
            f.name
            for f in sorted(Path(tmp).iterdir())
            if not (PROTO_DIR / f.name).is_file()
            or (PROTO_DIR / f.name).read_bytes() != f.read_bytes()
        ]
    if stale:
        print(f"generated protos are stale: {stale}; run `make protos`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
