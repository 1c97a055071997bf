"""MLServer custom runtime serving a SavedModel signature (benchmark peer)."""

import numpy as np
import tensorflow as tf
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SavedModelRuntime(MLModel):
    async def load(self) -> bool:
        path = self.settings.parameters.uri
        self.fn = tf.saved_model.load(path).signatures["serving_default"]
        _, kwargs = self.fn.structured_input_signature
        self.key = next(iter(kwargs))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        out = self.fn(**{self.key: tf.constant(x)})
        y = next(iter(out.values())).numpy()
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("y", y)])
