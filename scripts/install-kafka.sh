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

if [[ -f "$DEST/.complete" && "${1:-}" != "--fetch" ]]; then
  echo "$DEST/lib"
  exit 0
fi

command -v java >/dev/null || { echo "install-kafka: java not found (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "install-kafka: mvn not found (apt-get install maven)" >&2; exit 1; }
echo "install-kafka: fetching Kafka $KAFKA_VERSION's jars from Maven Central..." >&2
start=$SECONDS
tmp="$DEST.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -f "$ROOT/infra/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
  dependency:copy-dependencies -DoutputDirectory="$tmp/lib" -DincludeScope=runtime >&2
touch "$tmp/.complete"
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
echo "install-kafka: $(ls "$DEST/lib" | wc -l) jars in $((SECONDS - start)) s -> $DEST/lib" >&2
echo "$DEST/lib"
