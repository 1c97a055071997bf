"""The storage initializer: `modelship fetch` copies a model from object storage, HTTP or a local
folder into a TF Serving base path (numeric version folders, each a SavedModel)."""
