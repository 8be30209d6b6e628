"""Local development stack: starts real infrastructure (Consul, ...) and the services as
processes on loopback, for `make run` and for the integration tests."""
