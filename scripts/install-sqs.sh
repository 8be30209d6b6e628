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

if [[ -f "$DEST/.complete" ]]; then
  echo "$DEST/lib"
  exit 0
fi

command -v java >/dev/null || { echo "install-sqs: java not found (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "install-sqs: mvn not found (apt-get install maven)" >&2; exit 1; }
echo "install-sqs: fetching ElasticMQ $ELASTICMQ_VERSION's jars from Maven Central..." >&2
start=$SECONDS
tmp="$DEST.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -f "$ROOT/infra/elasticmq/pom.xml" -Delasticmq.version="$ELASTICMQ_VERSION" \
  dependency:copy-dependencies -DoutputDirectory="$tmp/lib" -DincludeScope=runtime >&2
touch "$tmp/.complete"
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
echo "install-sqs: $(find "$DEST/lib" -name "*.jar" | wc -l) jars in $((SECONDS - start)) s -> $DEST/lib" >&2
echo "$DEST/lib"
