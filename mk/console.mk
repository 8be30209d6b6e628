# The mesh console (docs/console.md): a page built from console/ (TypeScript, Vite,
# cytoscape) that the gateway serves at /console, and Debian's chromium for its browser
# tests (tests/console). scripts/install-console.sh builds it (make run needs it) and
# installs chromium (make test needs it).
#   make console   a sign-in link to the console of `make run` (a fresh token, while it is up)

.PHONY: console help-console

RUN_TOOLS += $(STAMPS)/console
ALL_TOOLS += $(STAMPS)/console $(STAMPS)/chromium

help: help-console
help-console:
	@echo "make console            a sign-in link to the mesh console of make run (a fresh token)"

$(STAMPS)/console: scripts/install-console.sh console/package-lock.json console/package.json \
		console/index.html console/vite.config.ts console/tsconfig.json $(wildcard console/src/*)
	@mkdir -p $(STAMPS)
	@$(STEP) console $(NICE) bash scripts/install-console.sh page
	@touch $@

# Only the browser tests need it (make test), not make run.
$(STAMPS)/chromium: scripts/install-console.sh
	@mkdir -p $(STAMPS)
	@$(STEP) chromium bash scripts/install-console.sh browser
	@touch $@

console: $(STAMPS)/python
	@$(PY) -m devstack.edge --console
