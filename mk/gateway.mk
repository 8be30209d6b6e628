# The edge: Ory Hydra (OAuth2/OIDC, built from the Go module proxy and cached like Consul)
# and the API gateway (services/gateway), both started by `make run`.
#   make token   an access token of the client `make run` registered (while it is up)

# This file is included before the Makefile's first target: keep `help` the default goal.
_gateway_default_goal := $(.DEFAULT_GOAL)

.PHONY: token help-gateway

setup: $(STAMPS)/hydra

help: help-gateway
help-gateway:
	@echo "make token              an OAuth2 access token for the gateway (needs make run up)"

$(STAMPS)/hydra: scripts/install-hydra.sh
	@mkdir -p $(STAMPS)
	bash scripts/install-hydra.sh
	@touch $@

token: $(STAMPS)/python
	@$(PY) -m devstack.edge

.DEFAULT_GOAL := $(_gateway_default_goal)
