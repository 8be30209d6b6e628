# Deployment past one machine: the Helm chart (deploy/helm/meshkit-shop), the plain
# manifests rendered from it (deploy/k8s), the GitHub Actions workflows (.github/workflows).
# No cluster runs here: they are checked offline (docs/deploy.md).
#   make chart            helm lint + helm template of each value set + the strict decode
#                         of every object against k8s.io/api (deploy/validate)
#   make manifests        render deploy/k8s/ again from the chart (commit it)
#   make workflows-check  actionlint over .github/workflows
#   make test-tier TIER=<dir>  setup-all, then the tests of tests/<dir> alone (each CI job
#                         runs one tier: .github/workflows/ci.yml)
# helm, actionlint and the validator are built from the Go module proxy by the first of
# these (scripts/install-deploy-tools.sh), not by `make setup`.

.PHONY: chart manifests workflows-check test-tier help-deploy

help: help-deploy
help-deploy:
	@echo "make chart              helm lint + template (each value set) + strict decode against k8s.io/api"
	@echo "make manifests          render deploy/k8s/ from the Helm chart again (commit the result)"
	@echo "make workflows-check    actionlint over .github/workflows"
	@echo "make test-tier TIER=x   the tests of tests/x alone, after setup-all (a CI job per tier)"

DEPLOY_STAMPS := $(STAMPS)/helm $(STAMPS)/actionlint $(STAMPS)/k8s-validate
ALL_TOOLS += $(DEPLOY_STAMPS)

$(STAMPS)/helm: scripts/install-deploy-tools.sh
	@mkdir -p $(STAMPS)
	@$(STEP) $(@F) $(NICE) bash scripts/install-deploy-tools.sh $(@F)
	@touch $@

# actionlint runs shellcheck over the workflows' run: scripts.
$(STAMPS)/actionlint: scripts/install-deploy-tools.sh
	@mkdir -p $(STAMPS)
	@$(STEP) $(@F) $(NICE) bash scripts/install-deploy-tools.sh shellcheck $(@F)
	@touch $@

$(STAMPS)/k8s-validate: scripts/install-deploy-tools.sh $(wildcard deploy/validate/*.go) \
		deploy/validate/go.mod deploy/validate/go.sum
	@mkdir -p $(STAMPS)
	@$(STEP) $(@F) $(NICE) bash scripts/install-deploy-tools.sh $(@F)
	@touch $@

chart:
	$(call install,$(STAMPS)/python $(STAMPS)/helm $(STAMPS)/k8s-validate)
	$(PY) -m deploy.render --check-all

manifests:
	$(call install,$(STAMPS)/python $(STAMPS)/helm)
	$(PY) -m deploy.render --write

workflows-check:
	$(call install,$(STAMPS)/actionlint)
	bin=$$(bash scripts/install-deploy-tools.sh shellcheck actionlint) && \
		$$bin/actionlint -color -shellcheck $$bin/shellcheck

test-tier:
	@test -n "$(TIER)" -a -d "tests/$(TIER)" || { echo "usage: make test-tier TIER=<a directory of tests/>" >&2; exit 2; }
	$(call install,$(ALL_TOOLS))
	$(PY) -m pytest -q tests/$(TIER) $(PYTEST_ARGS)
