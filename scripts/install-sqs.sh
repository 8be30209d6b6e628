#!/usr/bin/env bash
# Install ElasticMQ (the SQS-compatible server of `make run BROKER=sqs` and tests/brokers):
# its jars from Maven Central, fetched by Maven from infra/elasticmq/pom.xml
# (elasticmq-server_2.13 with its H2 message store, ~39 jars, ~37 MB), into the cache
# outside the repo; run with the system's Java 17 (devstack/brokers/sqs.py). A cached
# copy is reused. Prints the lib dir.
set -euo pipefail

ELASTICMQ_VERSION="${ELASTICMQ_VERSION:-1.7.1}"
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
DEST="$CACHE_DIR/elasticmq-$ELASTICMQ_VERSION"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

exec "$ROOT/scripts/maven-jars.sh" install-sqs "ElasticMQ $ELASTICMQ_VERSION" \
  "$ROOT/infra/elasticmq/pom.xml" "$DEST" -Delasticmq.version="$ELASTICMQ_VERSION"
