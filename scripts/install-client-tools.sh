#!/usr/bin/env bash
# Install what `make clients`, `make client-examples` and the polyglot tests need (not
# `make run`), each from its own registry and pinned, for every toolchain present (a missing
# one is reported, and its tests skip):
#   Go    protoc-gen-go, protoc-gen-go-grpc from the Go module proxy, into
#         ${MESHKIT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/meshkit-shop}/bin (reused), and the
#         client's modules (compiled once into Go's build cache)
#   Node  clients/node: `npm ci` from package-lock.json (protoc-gen-es, grpc-js, typescript)
#   Java  clients/java: protoc, protoc-gen-grpc-java, grpc-java and plugins from Maven
#         Central into ~/.m2 (one build of the example, which fetches all of it)
# The three toolchains are installed side by side (mostly downloads; Go compiles); each
# one's output is printed when it is done. The last line names the toolchains set up.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
BIN="$CACHE_DIR/bin"
GO_PLUGINS=(
  "protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  "protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
)
say() { echo "install-client-tools: $*" >&2; }

install_go() {
  mkdir -p "$BIN"
  for spec in "${GO_PLUGINS[@]}"; do
    name=${spec%% *}
    pkg=${spec#* }
    version=${pkg##*@}
    if [[ ! -x "$BIN/$name-$version" ]]; then
      say "go install $pkg"
      tmp="$BIN/.tmp-$name-$$"
      GOBIN="$tmp" go install "$pkg"
      mv "$tmp/$name" "$BIN/$name-$version"
      rmdir "$tmp"
    fi
    ln -sfn "$name-$version" "$BIN/$name"
  done
  # The client's modules, and its packages compiled once into Go's build cache (grpc-go
  # takes a while on 2 cores), so building the examples later is quick.
  (cd clients/go && go mod download && go build ./...)
}

install_node() {
  say "npm ci (clients/node)"
  npm ci --prefix clients/node --no-audit --no-fund --loglevel=error
}

install_java() {
  say "mvn package (clients/java; the first run downloads from Maven Central)"
  local tmp
  tmp="$(mktemp -d)"
  # -Pgenerate fetches protoc and protoc-gen-grpc-java too; generated into a scratch dir.
  mvn -B -q -Dstyle.color=never -f clients/java/pom.xml -Pgenerate -Dgen.dir="$tmp/java" package
  rm -rf "$tmp"
}

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
langs=()
pids=()
start() {  # start <lang> <needed commands...>: install_<lang> in the background, if present
  local lang=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { say "no $tool: skipping the ${lang^} client"; return 0; }
  done
  ("install_$lang") >"$logs/$lang" 2>&1 &
  langs+=("$lang")
  pids+=($!)
}
start go go
start node node npm
start java java mvn

failed=()
for i in "${!langs[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  cat "$logs/${langs[$i]}" >&2
  ((rc == 0)) || { say "${langs[$i]} failed (exit $rc)"; failed+=("${langs[$i]}"); }
done
((${#failed[@]} == 0)) || exit 1
echo "client tools (${langs[*]:-none})"
