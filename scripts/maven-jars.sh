#!/usr/bin/env bash
# The jars a pom's dependencies need (runtime scope), copied by Maven from Maven Central
# into DEST/lib, once: fetched into a temporary directory beside DEST and moved in whole,
# so an interrupted fetch leaves no half cache. A complete DEST is reused (--fetch: fetched
# anew). Prints the lib dir. Used by install-kafka.sh and install-sqs.sh.
#   maven-jars.sh [--fetch] NAME WHAT POM DEST [MAVEN_ARG...]
# NAME prefixes the messages (install-kafka), WHAT says what is fetched (Kafka 4.1.1).
set -euo pipefail

fetch=""
if [[ "${1:-}" == "--fetch" ]]; then fetch=1; shift; fi
(($# >= 4)) || { echo "usage: maven-jars.sh [--fetch] NAME WHAT POM DEST [MAVEN_ARG...]" >&2; exit 2; }
name="$1" what="$2" pom="$3" dest="$4"
shift 4

if [[ -f "$dest/.complete" && -z "$fetch" ]]; then
  echo "$dest/lib"
  exit 0
fi

command -v java >/dev/null || { echo "$name: java not found (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
command -v mvn >/dev/null || { echo "$name: mvn not found (apt-get install maven)" >&2; exit 1; }
echo "$name: fetching $what's jars from Maven Central..." >&2
start=$SECONDS
tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -f "$pom" "$@" \
  dependency:copy-dependencies -DoutputDirectory="$tmp/lib" -DincludeScope=runtime >&2
touch "$tmp/.complete"
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$name: $(find "$dest/lib" -name "*.jar" | wc -l) jars in $((SECONDS - start)) s -> $dest/lib" >&2
echo "$dest/lib"
