#!/usr/bin/env bash
# Install Ory Hydra (the OAuth2/OIDC server of `make run` and the gateway's tests): a cached
# build is reused; else build it from the Go module proxy. Prints the binary's path.
#
# `go install github.com/ory/hydra/v2@vX` refuses (Hydra's go.mod has replace directives),
# so we build through a throwaway wrapper module that repeats the replace it needs. The
# sqlite build tags are required for DSN=memory ("SQLite support was not built into the
# binary" otherwise); they need cgo. ~1 min on 2 cores; the binary (~41 MB) is cached
# outside the repo and reused.
set -euo pipefail

HYDRA_VERSION="${HYDRA_VERSION:-2.3.0}"
HYDRA_CLIENT_VERSION="${HYDRA_CLIENT_VERSION:-2.2.1}"
POP_REPLACE="github.com/ory/pop/v6 v6.2.1-0.20241121111754-e5dfc0f3344b"
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
BIN="$CACHE_DIR/bin/hydra-$HYDRA_VERSION"

if [[ -x "$BIN" && "${1:-}" != "--build" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "install-hydra: Go toolchain not found" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/go.mod" <<MOD
module meshkit.local/hydrabuild

go 1.25

require (
	github.com/ory/hydra/v2 v$HYDRA_VERSION
	github.com/ory/hydra-client-go/v2 v$HYDRA_CLIENT_VERSION
)

replace github.com/gobuffalo/pop/v6 => $POP_REPLACE
MOD
printf 'package main\n' >"$work/doc.go"
echo "install-hydra: building Ory Hydra v$HYDRA_VERSION from the Go module proxy (~1 min)..." >&2
mkdir -p "$CACHE_DIR/bin"
start=$SECONDS
(cd "$work" && CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" \
  -tags sqlite,sqlite_omit_load_extension -o "$BIN.tmp.$$" github.com/ory/hydra/v2)
mv "$BIN.tmp.$$" "$BIN"
ln -sf "hydra-$HYDRA_VERSION" "$CACHE_DIR/bin/hydra"
echo "install-hydra: built in $((SECONDS - start)) s -> $BIN" >&2
echo "$BIN"
