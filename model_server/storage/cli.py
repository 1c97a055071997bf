"""Minimal CLI placeholder."""
