# Polyglot clients (Go, Node.js, Java) generated from protos/, and the contract checks.
#   make clients             gen/go, gen/ts, gen/java and contracts/vectors/ from protos/
#   make client-examples     build the example of each language in clients/<lang>/
#   make contracts-check     buf lint, buf breaking against the release, the contract tests
#   make contracts-release   take protos/ as the released contracts (contracts/baseline/)
# The generators come from each toolchain's registry (scripts/install-client-tools.sh),
# installed by the first target that needs them (not by `make setup`: `make run` does
# not), for every toolchain present.

CONTRACTS_BASELINE := contracts/baseline/image.binpb

.PHONY: clients client-examples contracts-release contracts-check help-clients

ALL_TOOLS += $(STAMPS)/clients-tools

help: help-clients
help-clients:
	@echo "make clients            regenerate gen/go, gen/ts, gen/java and contracts/vectors from protos/"
	@echo "make client-examples    build the Go, Node.js and Java examples of clients/ (run: README)"
	@echo "make contracts-check    buf lint + buf breaking against contracts/baseline + contract tests"
	@echo "make contracts-release  take protos/ as released: refresh contracts/baseline (commit it)"

$(STAMPS)/clients-tools: scripts/install-client-tools.sh clients/node/package-lock.json \
		clients/go/go.mod clients/java/pom.xml
	@mkdir -p $(STAMPS)
	@$(STEP) client-tools $(NICE) bash scripts/install-client-tools.sh
	@touch $@

clients:
	$(call install,$(STAMPS)/python $(STAMPS)/clients-tools)
	$(PY) scripts/gen_clients.py
	$(PY) scripts/contract_vectors.py

client-examples: $(STAMPS)/clients-tools
	cd clients/go && go build -o ../../build/clients/place-order-go ./cmd/place-order
	cd clients/node && node_modules/.bin/tsc -p .
	cd clients/java && mvn -B -q -o package

contracts-check:
	$(call install,$(STAMPS)/python $(STAMPS)/clients-tools)
	$(BUF) lint protos
	$(BUF) breaking protos --against $(CONTRACTS_BASELINE)
	$(PY) -m pytest -q tests/contracts

contracts-release: $(STAMPS)/python
	$(PY) scripts/contracts_release.py
	$(PY) scripts/contract_vectors.py
