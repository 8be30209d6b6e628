#!/usr/bin/env bash
# Install the Consul binary: a `consul` on PATH wins; else a cached build; else build it
# from the Go module proxy (no registry ships a Consul binary). Prints the binary's path.
#
# `go install github.com/hashicorp/consul@vX` refuses because Consul's go.mod has replace
# directives, so we build through a throwaway wrapper module. Takes ~200 s on 2 cores from
# an empty module cache, ~170 s with modules cached; the binary (~126 MB) is cached outside
# the repo and reused.
set -euo pipefail

CONSUL_VERSION="${CONSUL_VERSION:-1.22.7}"
# Consul's own go.mod names api v1.33.7, which fails to build with 1.22.7; 1.34.1 works.
CONSUL_API_VERSION="${CONSUL_API_VERSION:-1.34.1}"
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
BIN="$CACHE_DIR/bin/consul-$CONSUL_VERSION"

if [[ "${1:-}" != "--build" ]] && command -v consul >/dev/null 2>&1; then
  command -v consul
  exit 0
fi
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "install-consul: Go toolchain not found" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/go.mod" <<MOD
module meshkit.local/consulbuild

go 1.25

require (
	github.com/hashicorp/consul v$CONSUL_VERSION
	github.com/hashicorp/consul/api v$CONSUL_API_VERSION
)

exclude (
	github.com/hashicorp/go-msgpack v1.1.5
	github.com/hashicorp/go-msgpack v1.1.6
)
MOD
printf 'package main\n' >"$work/doc.go"
echo "install-consul: building Consul v$CONSUL_VERSION from the Go module proxy (~3 min)..." >&2
mkdir -p "$CACHE_DIR/bin"
start=$SECONDS
(cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$BIN.tmp.$$" github.com/hashicorp/consul)
mv "$BIN.tmp.$$" "$BIN"
echo "install-consul: built in $((SECONDS - start)) s -> $BIN" >&2
echo "$BIN"
