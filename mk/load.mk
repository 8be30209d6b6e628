# A steady load against `make run`'s stack (devstack/load.py): RATE calls a second for
# DURATION seconds, of the kinds in MIX (reads, orders, cancels, by weight), at most
# LOAD_CONCURRENCY in flight. It finds the services through Consul (loopback only) as the
# operator, prints a line a second (throughput, p50/p99, errors by status code, breaker
# states) and a summary at the end. LOAD_ARGS go to devstack/load.py (e.g. --json).
#   make load RATE=50 DURATION=60 MIX=reads:6,orders:3,cancels:1

.PHONY: load help-load

help: help-load
help-load:
	@echo "make load               reads, orders and cancels against make run's stack (RATE, DURATION, MIX)"

RATE ?= 20
DURATION ?= 30
MIX ?= reads:6,orders:3,cancels:1
LOAD_CONCURRENCY ?= 64

load: $(STAMPS)/python
	$(PY) -m devstack.load --rate $(RATE) --duration $(DURATION) --mix $(MIX) \
		--concurrency $(LOAD_CONCURRENCY) $(LOAD_ARGS)
