# A clustered stack on one machine (devstack/cluster.py, docs/cluster.md): 3 Consul servers
# (Raft), 3 simulated nodes (a Consul client agent and a NATS server each; JetStream
# clustered, the event stream R3), 2 instances of each service and of the gateway, Hydra
# and the signer on a control node. All on loopback, free ports; state in .state/cluster.
# It needs what `make run` needs.
#   make run-cluster                        up, with a summary (leaders, replicas, instances)
#   make cluster-fault SCENARIO=<name>      a cluster of its own, a burst of ORDERS orders at
#                                           BURST_RATE a second, the fault in the middle, the
#                                           report (recovery times, invariants); exit 1 if an
#                                           invariant fails. SCENARIO=list lists them.

.PHONY: run-cluster cluster-fault help-cluster

help: help-cluster
help-cluster:
	@echo "make run-cluster        3 Consul servers, 3 nodes (Consul agent + NATS each, stream R3), 2 instances of each service"
	@echo "make cluster-fault SCENARIO=<s>  a fault (consul-leader, nats-stream-leader, kill-instances, node-restart) during a burst of orders"

ORDERS ?= 500
BURST_RATE ?= 20

run-cluster: setup
	$(PY) -m devstack.cluster $(CLUSTER_ARGS)

cluster-fault:
	@test -n "$(SCENARIO)" || { echo "usage: make cluster-fault SCENARIO=<name> (SCENARIO=list lists them)"; exit 2; }
	@$(MAKE) --no-print-directory setup
	$(PY) -m devstack.cluster_faults $(SCENARIO) --orders $(ORDERS) --rate $(BURST_RATE) $(CLUSTER_FAULT_ARGS)
