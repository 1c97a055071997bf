"""Fetches a model from object storage or HTTP into a TF Serving base path."""
