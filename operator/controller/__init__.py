"""Reconciliation: snapshot of the world in, plan of API calls out, then the calls."""
