"""Benchmarks of the mesh: what it costs per call against bare grpcio, and what the order
flow sustains. ``make bench`` (``python -m bench.run``) runs them all; see bench/run.py."""
