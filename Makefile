# meshkit-shop: `make setup && make run` runs the system, `make test` passes the tests.
# Every target that needs tools depends on the stamps of `setup`, so a fresh machine
# gets everything it needs from the first command it runs.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := $(VENV)/bin/buf
RUFF := $(VENV)/bin/ruff
STAMPS := .state/stamps
GOBIN ?= $(shell go env GOPATH 2>/dev/null)/bin

.PHONY: setup gen lint test run consul certs clean help

# Targets of other areas (clients, benchmarks, ...) live in mk/<area>.mk.
-include mk/*.mk

help:
	@echo "make setup   venv + Python deps (incl. buf, nats-server), Consul, Hydra, grpcurl, ghz (Go module proxy, cached), client generators"
	@echo "make run     Consul, NATS, Hydra, the four services and the gateway on loopback (Ctrl-C stops all)"
	@echo "make test    lint + the whole test suite (real Consul, NATS, Hydra on free loopback ports)"
	@echo "make gen     regenerate gen/python from protos/"
	@echo "make lint    ruff + buf lint"
	@echo "make consul  a Consul dev agent on 127.0.0.1 (HTTP :8500), the mesh CA as its Connect root"
	@echo "make certs   the mesh's dev CA in .state/ca (make run creates it too)"
	@echo "make clean   remove the venv and local state (the cached Consul binary stays)"

setup: $(STAMPS)/python $(STAMPS)/consul $(STAMPS)/go-tools

$(STAMPS)/python: pyproject.toml constraints.txt
	@mkdir -p $(STAMPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

$(STAMPS)/consul: scripts/install-consul.sh
	@mkdir -p $(STAMPS)
	bash scripts/install-consul.sh
	@touch $@

$(STAMPS)/go-tools: scripts/install-go-tools.sh
	@mkdir -p $(STAMPS)
	bash scripts/install-go-tools.sh
	@touch $@

gen: $(STAMPS)/python
	$(PY) scripts/gen_python.py

lint: $(STAMPS)/python
	$(RUFF) check .
	$(RUFF) format --check .
	$(BUF) lint protos

test: setup lint
	$(PY) -m pytest

run: setup
	$(PY) -m devstack.run

consul: $(STAMPS)/consul $(STAMPS)/python
	$(PY) -m devstack.consul

certs: $(STAMPS)/python
	$(PY) -m meshkit.tools.certs certs init

clean:
	rm -rf $(VENV) .state .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
