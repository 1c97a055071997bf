"""Typed API models for modelship.dev/v1alpha1; the source of truth for crds/."""
