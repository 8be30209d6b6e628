"""Helpers for the tests: polling for a state, and fault-injecting service wrappers."""
