# Observability: traces in the local sink of `make run` (.state/traces.db).
#   make trace ORDER=<id>   the order's traces as indented trees with timings
#   make trace              the orders seen last
# Metrics: each service's /metrics port is in `make run`'s summary and in its Consul meta;
# infra/prometheus/prometheus.yml finds them through Consul.

.PHONY: trace help-observability

help: help-observability
help-observability:
	@echo "make trace ORDER=<id>   an order's trace across services and the broker, as a tree with timings"

trace: $(STAMPS)/python
	@$(PY) -m meshkit.tools.trace $(ORDER)
