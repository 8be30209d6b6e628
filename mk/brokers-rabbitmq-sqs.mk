# RabbitMQ and SQS (ElasticMQ), two of the event brokers of docs/brokers.md:
# `make run BROKER=rabbitmq|sqs` installs the chosen one on first use; `make setup-all`
# (CI) installs both, since tests/brokers runs every broker against its real server.
# (BROKER and the Kafka/NATS side are in mk/brokers.mk.)

ALL_TOOLS += $(STAMPS)/rabbitmq $(STAMPS)/sqs
ifeq ($(BROKER),rabbitmq)
RUN_TOOLS += $(STAMPS)/rabbitmq
endif
ifeq ($(BROKER),sqs)
RUN_TOOLS += $(STAMPS)/sqs
endif

# Debian's rabbitmq-server (apt-get, as root); devstack runs the node itself.
$(STAMPS)/rabbitmq: scripts/install-rabbitmq.sh
	@mkdir -p $(STAMPS)
	@$(STEP) rabbitmq bash scripts/install-rabbitmq.sh
	@touch $@

# ElasticMQ's jars from Maven Central (infra/elasticmq/pom.xml), cached outside the repo.
$(STAMPS)/sqs: scripts/install-sqs.sh scripts/maven-jars.sh infra/elasticmq/pom.xml
	@mkdir -p $(STAMPS)
	@$(STEP) sqs bash scripts/install-sqs.sh
	@touch $@
