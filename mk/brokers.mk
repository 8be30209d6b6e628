# The event brokers besides NATS (docs/brokers.md): `make run BROKER=kafka|rabbitmq|sqs|nats`
# (NATS the default) installs the chosen one on first use; `make setup-all` (CI) installs
# them all, since tests/brokers runs every broker against its real server.

BROKER ?= nats
export BROKER

.PHONY: help-brokers
help: help-brokers
help-brokers:
	@echo "make run BROKER=kafka   the same system on Kafka (or rabbitmq, sqs; nats is the default)"

ALL_TOOLS += $(STAMPS)/kafka
ifeq ($(BROKER),kafka)
RUN_TOOLS += $(STAMPS)/kafka
endif

# Apache Kafka's jars from Maven Central (infra/kafka/pom.xml), cached outside the repo.
$(STAMPS)/kafka: scripts/install-kafka.sh infra/kafka/pom.xml
	@mkdir -p $(STAMPS)
	@$(STEP) kafka bash scripts/install-kafka.sh
	@touch $@
