# The edge: Ory Hydra (OAuth2/OIDC, built from the Go module proxy and cached like Consul;
# its stamp's rule is in the Makefile, with the rest of what `make run` needs)
# and the API gateway (services/gateway), both started by `make run`.
#   make token   an access token of the client `make run` registered (while it is up)

.PHONY: token help-gateway

help: help-gateway
help-gateway:
	@echo "make token              an OAuth2 access token for the gateway (needs make run up)"

token: $(STAMPS)/python
	@$(PY) -m devstack.edge
