"""Write (or with --check, verify) the files generated from the API types."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelship_operator.api.render import render_all

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when a file is out of date")
    args = parser.parse_args()
    stale = []
    for relative, text in render_all().items():
        path = ROOT / relative
        if path.exists() and path.read_text() == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print("out of date, run `make crds`: " + ", ".join(stale), file=sys.stderr)
        return 1
    for relative in stale:
        print(f"wrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
