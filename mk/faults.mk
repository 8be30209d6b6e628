# Fault injection: the named scenarios of infra/faults/ (one fault each: a delay or an
# abort, on a service's methods, for a share of its calls, optionally only for some
# callers) applied to the running `make run` stack through Consul's KV (mesh/faults/<service>,
# which every instance watches; docs/mesh.md#faults). They take Consul's management token
# from .state/consul/ and Consul at 127.0.0.1:8500 (or $CONSUL_HTTP_ADDR).
#   make faults                           the scenarios, and which are active
#   make fault SCENARIO=payment-delay-2s  apply one, beside those active (CALLERS=order: only
#                                         for those callers)
#   make fault-clear                      clear every active fault

.PHONY: fault fault-clear faults help-faults

help: help-faults
help-faults:
	@echo "make faults             the fault scenarios of infra/faults/ and which are active (make run up)"
	@echo "make fault SCENARIO=<s> apply a fault scenario to the running stack (CALLERS=a,b: only theirs)"
	@echo "make fault-clear        clear every active fault"

faults: $(STAMPS)/python
	@$(PY) -m devstack.faults list

fault: $(STAMPS)/python
	@test -n "$(SCENARIO)" || { echo "usage: make fault SCENARIO=<name> (make faults lists them)"; exit 2; }
	@$(PY) -m devstack.faults apply $(SCENARIO) $(if $(CALLERS),--callers $(CALLERS))

fault-clear: $(STAMPS)/python
	@$(PY) -m devstack.faults clear
