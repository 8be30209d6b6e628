#!/usr/bin/env bash
# Install Apache Kafka (the broker of `make run BROKER=kafka` and tests/brokers): its jars
# from Maven Central, fetched by Maven from infra/kafka/pom.xml (kafka_2.13 and slf4j-simple,
# 46 jars, ~43 MB), into the cache outside the repo; run with the system's Java 17 (KRaft,
# no ZooKeeper: devstack/brokers/kafka.py). A cached copy is reused. Prints the lib dir.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# A changed pom (another binding, another version) is fetched anew, beside the old one.
POM_SUM="$(sha256sum "$ROOT/infra/kafka/pom.xml" | cut -c1-8)"
DEST="$CACHE_DIR/kafka-$KAFKA_VERSION-$POM_SUM"

fetch=()
[[ "${1:-}" == "--fetch" ]] && fetch=(--fetch)
exec "$ROOT/scripts/maven-jars.sh" "${fetch[@]}" install-kafka "Kafka $KAFKA_VERSION" \
  "$ROOT/infra/kafka/pom.xml" "$DEST" -Dkafka.version="$KAFKA_VERSION"
