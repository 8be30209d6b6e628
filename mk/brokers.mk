# The event brokers besides NATS (docs/brokers.md): `make run BROKER=kafka|rabbitmq|sqs|nats`
# (NATS the default) installs the chosen one on first use; `make setup-all` (CI) installs
# them all, since tests/brokers runs every broker against its real server.

BROKER ?= nats
export BROKER

.PHONY: help-brokers help-bench-brokers
help: help-brokers
help-brokers:
	@echo "make run BROKER=kafka   the same system on Kafka (or rabbitmq, sqs; nats is the default)"

ALL_TOOLS += $(STAMPS)/kafka
ifeq ($(BROKER),kafka)
RUN_TOOLS += $(STAMPS)/kafka
endif

# Apache Kafka's jars from Maven Central (infra/kafka/pom.xml), cached outside the repo.
$(STAMPS)/kafka: scripts/install-kafka.sh scripts/maven-jars.sh infra/kafka/pom.xml
	@mkdir -p $(STAMPS)
	@$(STEP) kafka bash scripts/install-kafka.sh
	@touch $@

# The order flow on each broker side by side (bench/brokers.py); `make bench` runs it too.
# BROKER_BENCH_ARGS go to bench/brokers.py, e.g. "--brokers nats,kafka" or "--quick".
# BROKER_TOOLS: every broker's server (RabbitMQ's and SQS's rules: mk/brokers-rabbitmq-sqs.mk).
BROKER_TOOLS += $(STAMPS)/kafka $(STAMPS)/rabbitmq $(STAMPS)/sqs
.PHONY: bench-brokers
help: help-bench-brokers
help-bench-brokers:
	@echo "make bench-brokers      the order flow on NATS, Kafka, RabbitMQ, SQS side by side (orders/s, p50/p99)"

bench-brokers:
	$(call install,$(STAMPS)/python $(STAMPS)/consul $(BROKER_TOOLS))
	$(PY) -m bench.brokers $(BROKER_BENCH_ARGS)
