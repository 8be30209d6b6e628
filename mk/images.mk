# Container images and the whole system in containers (docs/containers.md). Debian's Docker
# engine (docker.io) is started by devstack on a socket of its own (never the system's);
# the base image comes from debootstrap and the machine's own Debian mirror (no registry).
#   make images            the base and every image (infra/docker/Dockerfile), their sizes
#   make run-containers    Consul, the signer, NATS, Hydra, the services and the gateway, each
#                          in a container (host networking, free loopback ports); Ctrl-C stops
# Both need root (dockerd does). The engine's data stays in .state/docker between runs.

.PHONY: images run-containers help-images

help: help-images
help-images:
	@echo "make images             the container images (base from debootstrap, a target per service), their sizes"
	@echo "make run-containers     the whole system in containers (own Docker engine, loopback ports); Ctrl-C stops"

IMAGE_TOOLS := $(STAMPS)/python $(STAMPS)/consul $(STAMPS)/hydra $(STAMPS)/docker
ALL_TOOLS += $(STAMPS)/docker

# (after the venv: it also makes the base images' tarballs and the wheels, with devstack)
$(STAMPS)/docker: scripts/install-docker.sh | $(STAMPS)/python
	@mkdir -p $(STAMPS)
	@PY=$(PY) $(STEP) docker bash scripts/install-docker.sh
	@touch $@

images:
	$(call install,$(IMAGE_TOOLS))
	$(PY) -m devstack.containers images

run-containers:
	$(call install,$(IMAGE_TOOLS) $(STAMPS)/grpcurl)
	$(PY) -m devstack.containers run
