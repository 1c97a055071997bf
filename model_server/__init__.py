"""modelship model server (TF Serving-compatible); built in a later issue."""
