# Deployment past one machine: the Helm chart (deploy/helm/meshkit-shop), the plain
# manifests rendered from it (deploy/k8s), the GitHub Actions workflows (.github/workflows).
# No cluster runs here: they are checked offline (docs/deploy.md).
#   make chart            helm lint + helm template of each value set + the strict decode
#                         of every object against k8s.io/api (deploy/validate)
#   make manifests        render deploy/k8s/ again from the chart (commit it)
#   make workflows-check  actionlint over .github/workflows
# helm, actionlint and the validator are built from the Go module proxy by the first of
# these (scripts/install-deploy-tools.sh), not by `make setup`.

.PHONY: chart manifests workflows-check help-deploy

help: help-deploy
help-deploy:
	@echo "make chart              helm lint + template (each value set) + strict decode against k8s.io/api"
	@echo "make manifests          render deploy/k8s/ from the Helm chart again (commit the result)"
	@echo "make workflows-check    actionlint over .github/workflows"

DEPLOY_STAMPS := $(STAMPS)/helm $(STAMPS)/actionlint $(STAMPS)/k8s-validate
ALL_TOOLS += $(DEPLOY_STAMPS)

$(STAMPS)/helm $(STAMPS)/actionlint: scripts/install-deploy-tools.sh
	@mkdir -p $(STAMPS)
	@$(STEP) $(@F) $(NICE) bash scripts/install-deploy-tools.sh $(@F)
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
	$$(bash scripts/install-deploy-tools.sh actionlint)/actionlint -color
