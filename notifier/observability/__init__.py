"""Metrics, logs and heartbeats."""
