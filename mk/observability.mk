# Observability: traces in the local sink of `make run` (.state/traces.db).
#   make trace ORDER=<id>   the order's traces as indented trees with timings
#   make trace              the orders seen last
# Metrics: each service's /metrics port is in `make run`'s summary and in its Consul meta;
# infra/prometheus/prometheus.yml finds them through Consul.

# This file is included before the Makefile's first target: keep `help` the default goal.
_observability_default_goal := $(.DEFAULT_GOAL)

.PHONY: trace help-observability

# Printed ahead of the Makefile's own help lines (a prerequisite of `help`).
help: help-observability
help-observability:
	@echo "make trace ORDER=<id>   an order's trace across services and the broker, as a tree with timings"

trace: $(STAMPS)/python
	@$(PY) -m meshkit.tools.trace $(ORDER)

.DEFAULT_GOAL := $(_observability_default_goal)
