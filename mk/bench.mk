# Benchmarks: what the mesh costs per call against bare grpcio, and what the order flow
# sustains (bench/run.py). Loopback only, bounded in count and time; a table on stdout
# (each figure beside its target, PASS/MISS) and the same figures as JSON in bench/results/.
#   make bench         every section, a few minutes
#   make bench-quick   the same sections with tiny counts (< 60 s; what the smoke test runs)
# BENCH_ARGS go to bench/run.py, e.g. BENCH_ARGS="--sections 1,4" or
# BENCH_ARGS="--mesh-env OTEL_TRACES_SAMPLER=always_off" (what tracing costs).
# ghz (the Go load generator) is installed by the first of these, not by `make setup`.

.PHONY: bench bench-quick help-bench bench-databases

help: help-bench
help-bench:
	@echo "make bench              benchmarks: mesh vs bare grpcio per call, order flow, failover, scaling"
	@echo "make bench-quick        the same benchmarks with tiny counts (proves the harness, < 60 s)"
	@echo "make bench-databases    the order flow on SQLite and on PostgreSQL side by side (make bench runs it)"

BENCH_TOOLS := $(STAMPS)/python $(STAMPS)/consul $(STAMPS)/ghz
ALL_TOOLS += $(STAMPS)/ghz

bench:
	$(call install,$(BENCH_TOOLS))
	$(PY) -m bench.run $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-brokers
	@$(MAKE) --no-print-directory bench-databases

# The order flow per database backend (bench/databases.py; BENCH_DB_ARGS=--quick: tiny).
bench-databases:
	$(call install,$(BENCH_TOOLS) $(STAMPS)/postgres)
	$(PY) -m bench.databases $(BENCH_DB_ARGS)

bench-quick:
	$(call install,$(BENCH_TOOLS))
	$(PY) -m bench.run --quick $(BENCH_ARGS)
