#!/usr/bin/env bash
# Install what `make clients` and the polyglot tests need, each from its own registry and
# pinned, for every toolchain present (a missing one is reported, and its tests skip):
#   Go    protoc-gen-go, protoc-gen-go-grpc from the Go module proxy, into
#         ${MESHKIT_CACHE:-~/.cache/meshkit-shop}/bin (reused), and the client's modules
#         (compiled once into Go's build cache)
#   Node  clients/node: `npm ci` from package-lock.json (protoc-gen-es, grpc-js, typescript)
#   Java  clients/java: protoc, protoc-gen-grpc-java, grpc-java and plugins from Maven
#         Central into ~/.m2 (one build of the example, which fetches all of it)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
BIN="$CACHE_DIR/bin"
GO_PLUGINS=(
  "protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  "protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
)
say() { echo "install-client-tools: $*" >&2; }

if command -v go >/dev/null; then
  mkdir -p "$BIN"
  for spec in "${GO_PLUGINS[@]}"; do
    name=${spec%% *}
    pkg=${spec#* }
    version=${pkg##*@}
    if [[ ! -x "$BIN/$name-$version" ]]; then
      say "go install $pkg"
      GOBIN="$BIN/.tmp-$name" go install "$pkg"
      mv "$BIN/.tmp-$name/$name" "$BIN/$name-$version"
      rmdir "$BIN/.tmp-$name"
    fi
    ln -sf "$name-$version" "$BIN/$name"
  done
  # The client's modules, and its packages compiled once into Go's build cache (grpc-go
  # takes a while on 2 cores), so building the examples later is quick.
  (cd clients/go && go mod download && go build ./...)
else
  say "no go: skipping the Go client"
fi

if command -v npm >/dev/null && command -v node >/dev/null; then
  say "npm ci (clients/node)"
  npm ci --prefix clients/node --no-audit --no-fund --loglevel=error
else
  say "no node/npm: skipping the Node client"
fi

if command -v mvn >/dev/null && command -v java >/dev/null; then
  say "mvn package (clients/java; the first run downloads from Maven Central)"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # -Pgenerate fetches protoc and protoc-gen-grpc-java too; generated into a scratch dir.
  mvn -B -q -Dstyle.color=never -f clients/java/pom.xml -Pgenerate -Dgen.dir="$tmp/java" package
else
  say "no java/mvn: skipping the Java client"
fi
echo "$BIN"
