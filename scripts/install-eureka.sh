#!/usr/bin/env bash
# Build the Eureka server of `make run DISCOVERY=eureka` and tests/discovery: the Spring
# Boot application in infra/eureka (spring-cloud-starter-netflix-eureka-server 5.0.3, from
# Maven Central), packaged by Maven into one executable jar. The build is cached outside
# the repo, keyed by the application's files, and reused. Prints the directory of
# eureka-server.jar. Needs Maven and a JDK 17+ (Spring Boot 4's minimum).
#   usage: scripts/install-eureka.sh
set -euo pipefail
cd "$(dirname "$0")/.."
NETFLIX_VERSION=5.0.3
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
key=$(find infra/eureka -type f -not -path '*/target/*' | sort | xargs sha256sum | sha256sum | cut -c1-12)
DIR="$CACHE_DIR/eureka-$NETFLIX_VERSION-$key"

if [[ ! -f "$DIR/eureka-server.jar" ]]; then
  if ! command -v mvn >/dev/null || ! command -v java >/dev/null; then
    # Debian's Maven and JDK (17 on bookworm); another setup step may hold the dpkg lock.
    ((EUID == 0)) || { echo "install-eureka: Maven and a JDK 17+ are needed (apt-get install maven openjdk-17-jdk-headless)" >&2; exit 1; }
    echo "install-eureka: apt-get install maven openjdk-17-jdk-headless" >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
      --no-install-recommends maven openjdk-17-jdk-headless >&2
  fi
  java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/.*java.specification.version = //p')
  ((${java_major:-0} >= 17)) || { echo "install-eureka: Java 17+ needed, found ${java_major:-none}" >&2; exit 1; }
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cp -r infra/eureka/. "$work/"
  rm -rf "$work/target"
  echo "install-eureka: mvn package (infra/eureka; the first run downloads from Maven Central)" >&2
  mvn -B -q -Dstyle.color=never -f "$work/pom.xml" -DskipTests package >&2
  mkdir -p "$DIR.tmp"
  cp "$work/target/eureka-server.jar" "$DIR.tmp/"
  rm -rf "$DIR"
  mv "$DIR.tmp" "$DIR"
  # earlier builds (of other versions of infra/eureka) go
  find "$CACHE_DIR" -maxdepth 1 -name 'eureka-*' -not -name "${DIR##*/}" -exec rm -rf {} +
fi
echo "$DIR"
