"""The data plane: errors, tensor types, the model registry with versions, batching, metrics."""
