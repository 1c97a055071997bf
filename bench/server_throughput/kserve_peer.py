"""KServe's Python ModelServer with a custom Model serving a SavedModel signature (benchmark peer).

Run in the peers' own venv: python kserve_peer.py --http_port N --model name=path ...
"""

import argparse

import kserve
import numpy as np
import tensorflow as tf


class SavedModel(kserve.Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.load()

    def load(self) -> bool:
        self.fn = tf.saved_model.load(self.path).signatures["serving_default"]
        _, kwargs = self.fn.structured_input_signature
        self.key = next(iter(kwargs))
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        x = tf.constant(np.asarray(payload["instances"], dtype=np.float32))
        out = self.fn(**{self.key: x})
        return {"predictions": next(iter(out.values())).numpy().tolist()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http_port", type=int, required=True)
    parser.add_argument("--grpc_port", type=int, required=True)
    parser.add_argument("--model", action="append", required=True, help="name=path")
    args = parser.parse_args()
    models = [SavedModel(*spec.split("=", 1)) for spec in args.model]
    kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port).start(models)
