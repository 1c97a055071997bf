"""The model the local cluster's store holds: a SavedModel computing y = 0.5 * x + 2.

`serving_default` takes `x` (float32, shape [None]) and returns `y`, so TF Serving's REST
predict `{"instances": [1.0, 2.0, 5.0]}` answers `{"predictions": [2.5, 3.0, 4.5]}`. Importing
TensorFlow takes seconds, so it is built once into the cache, keyed by VERSION.

`python -m modelship_localcluster.seed_model` builds it (if not cached) and prints its folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from .cache import cache_root

# Bump when the model below changes, so caches built from the old code are not reused.
VERSION = "1"
NAME = "half-plus-two"
SLOPE = 0.5
INTERCEPT = 2.0


def cached_path(root: Path | None = None) -> Path:
    return (root or cache_root()) / "models" / f"{NAME}-{VERSION}"


def is_built(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() and (path / "variables").is_dir()


def build(dest: Path) -> None:
    """Write the SavedModel to `dest` (replaced whole: a half-written model is never seen)."""
    import tensorflow as tf  # noqa: PLC0415 - seconds to import, only when building

    class HalfPlusTwo(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.slope = tf.Variable(SLOPE, dtype=tf.float32, name="slope")
            self.intercept = tf.Variable(INTERCEPT, dtype=tf.float32, name="intercept")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])  # type: ignore[untyped-decorator]
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": self.slope * x + self.intercept}

    model = HalfPlusTwo()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        tf.saved_model.save(model, str(staging), signatures={"serving_default": model.serve})
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_built(path: Path | None = None) -> Path:
    path = path or cached_path()
    if not is_built(path):
        build(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help=f"folder (default: the cache, {NAME}-{VERSION})")
    args = parser.parse_args(argv)
    print(ensure_built(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
