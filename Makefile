# meshkit-shop: `make run` runs the system, `make test` passes the tests, `make help` (the
# default) lists every target. Each target installs only what it needs, on first use, and
# reuses it afterwards (stamps in .state/stamps; binaries cached outside the repo in
# ${MESHKIT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/meshkit-shop}):
#   make run / setup   venv (incl. buf, nats-server), Consul, Hydra, grpcurl
#   make clients       + the client generators of each toolchain (Go, Node, Java)
#   make bench         + ghz
#   make test          all of it (setup-all)
# Missing pieces are installed side by side (SETUP_JOBS at once), with one line per step
# and its time; each step's output is in .state/logs/setup/<step>.log.

.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := $(VENV)/bin/buf
RUFF := $(VENV)/bin/ruff
STAMPS := .state/stamps
STEP := bash scripts/setup-step.sh
# Consul's build (CPU-bound, the longest: ~600 CPU-s cold) overlaps with the downloads of
# the others (pip, Go modules, npm, Maven) and with Hydra's single-threaded cgo compile of
# SQLite (~100 CPU-s). The smaller builds (grpcurl, ghz, client tools) run niced: they fill
# the cores those two leave idle (downloads, links) rather than delay them.
SETUP_JOBS ?= 4
NICE := nice -n 10

# What each group of targets needs; the areas in mk/*.mk add theirs.
RUN_TOOLS := $(STAMPS)/python $(STAMPS)/consul $(STAMPS)/hydra $(STAMPS)/grpcurl
ALL_TOOLS := $(RUN_TOOLS)
# The tests that need nothing but the venv: no Consul, NATS, Hydra, Go/Node/Java.
UNIT_TESTS := tests/unit tests/component tests/contracts
UNIT_DESELECT := tests/contracts/test_generated_clients.py \
	tests/contracts/test_wire_vectors.py::test_go_round_trip \
	tests/contracts/test_wire_vectors.py::test_node_round_trip \
	tests/contracts/test_wire_vectors.py::test_java_round_trip

# install <stamps...>: whatever of them is missing or stale, side by side.
# (A recipe line: `$(call install,...)`.)
install = +@$(MAKE) --no-print-directory -q $(1) 2>/dev/null || { \
	echo "setup: installing what is missing, $(SETUP_JOBS) at a time (logs: .state/logs/setup/)"; \
	$(MAKE) --no-print-directory -j$(SETUP_JOBS) $(1) && echo "setup: ready ($$SECONDS s)"; }

.PHONY: help help-main setup setup-all run test test-unit gen lint consul certs clean

help: help-main
help-main:
	@echo "make run                Consul, NATS, Hydra, the four services and the gateway on loopback (Ctrl-C stops all)"
	@echo "make setup              what make run needs: venv (Python deps incl. buf, nats-server), Consul, Hydra, grpcurl"
	@echo "make setup-all          setup + what make test/clients/bench add: client generators (Go, Node, Java), ghz"
	@echo "make test               lint + the whole test suite (real Consul, NATS, Hydra on free loopback ports)"
	@echo "make test-unit          the tests that need only the venv (unit, component, contracts), no services"
	@echo "make gen                regenerate gen/python from protos/"
	@echo "make lint               ruff + buf lint"
	@echo "make consul             a Consul dev agent on 127.0.0.1 (HTTP :8500), the mesh CA as its Connect root"
	@echo "make certs              a dev CA on disk in .state/signer, for a signer run by hand"
	@echo "make clean              remove the venv and local state (the cached binaries stay)"

# Targets of other areas (clients, benchmarks, ...) live in mk/<area>.mk; they add their
# help lines, their tools to ALL_TOOLS, and their stamps' rules.
include $(sort $(wildcard mk/*.mk))

setup:
	$(call install,$(RUN_TOOLS))

setup-all:
	$(call install,$(ALL_TOOLS))

$(STAMPS)/python: pyproject.toml constraints.txt scripts/install-python.sh
	@mkdir -p $(STAMPS)
	@PYTHON=$(PYTHON) VENV=$(VENV) $(STEP) venv bash scripts/install-python.sh
	@touch $@

$(STAMPS)/consul: scripts/install-consul.sh
	@mkdir -p $(STAMPS)
	@$(STEP) consul bash scripts/install-consul.sh
	@touch $@

$(STAMPS)/hydra: scripts/install-hydra.sh
	@mkdir -p $(STAMPS)
	@$(STEP) hydra bash scripts/install-hydra.sh
	@touch $@

$(STAMPS)/grpcurl $(STAMPS)/ghz: scripts/install-go-tools.sh
	@mkdir -p $(STAMPS)
	@$(STEP) $(@F) $(NICE) bash scripts/install-go-tools.sh $(@F)
	@touch $@

gen: $(STAMPS)/python
	$(PY) scripts/gen_python.py

lint: $(STAMPS)/python
	$(RUFF) check .
	$(RUFF) format --check .
	$(BUF) lint protos

# lint after setup-all (not beside it under make -j: both would install the venv). The
# tiers run in three groups side by side (scripts/run-tests.sh; TEST_JOBS=1: one by one).
test: setup-all
	@$(MAKE) --no-print-directory lint
	@PY=$(PY) bash scripts/run-tests.sh

test-unit: $(STAMPS)/python
	$(PY) -m pytest -q $(wildcard $(UNIT_TESTS)) $(addprefix --deselect ,$(UNIT_DESELECT))

run: setup
	$(PY) -m devstack.run $(RUN_ARGS)

consul: $(STAMPS)/python $(STAMPS)/consul
	$(PY) -m devstack.consul

certs: $(STAMPS)/python
	$(PY) -m meshkit.tools.certs certs init

clean:
	rm -rf $(VENV) .state .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
