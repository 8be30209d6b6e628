# Discovery backends besides Consul (docs/discovery.md): Eureka (Spring Cloud Netflix's
# server, built by Maven from infra/eureka and cached) and DNS SRV (Consul's DNS interface
# stands in for Kubernetes' in the devstack and the tests; nothing to install).
#   make run DISCOVERY=eureka   the services register in and find each other in Eureka
#   make run DISCOVERY=dns      they find each other by DNS SRV (registered in Consul)
#   make eureka                 a Eureka server on 127.0.0.1:8761 (Ctrl-C stops it)

.PHONY: eureka help-discovery

help: help-discovery
help-discovery:
	@echo "make eureka             a Eureka server (Spring Cloud Netflix) on 127.0.0.1:8761; make run DISCOVERY=eureka uses one"

ALL_TOOLS += $(STAMPS)/eureka
ifeq ($(DISCOVERY),eureka)
RUN_TOOLS += $(STAMPS)/eureka
endif

$(STAMPS)/eureka: scripts/install-eureka.sh $(shell find infra/eureka -type f -not -path '*/target/*')
	@mkdir -p $(STAMPS)
	@$(STEP) eureka $(NICE) bash scripts/install-eureka.sh
	@touch $@

eureka: $(STAMPS)/python $(STAMPS)/eureka
	$(PY) -m devstack.eureka
