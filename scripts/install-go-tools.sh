#!/usr/bin/env bash
# Install the Go tools the project uses, pinned, from the Go module proxy, into
# ${MESHKIT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/meshkit-shop}/bin (reused when present).
# Prints that directory.
#   grpcurl: calls services from the command line (README, tests); `make run` installs it.
#   ghz:     gRPC load generator (make bench, make test).
#   usage: scripts/install-go-tools.sh [name...]   (no name: every tool)
set -euo pipefail
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
BIN="$CACHE_DIR/bin"
declare -A TOOLS=(
  [grpcurl]="github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4"
  [ghz]="github.com/bojand/ghz/cmd/ghz@v0.120.0"
)
names=("$@")
((${#names[@]})) || names=(grpcurl ghz)
mkdir -p "$BIN"
for name in "${names[@]}"; do
  pkg=${TOOLS[$name]:-}
  [[ -n "$pkg" ]] || { echo "install-go-tools: unknown tool $name (${!TOOLS[*]})" >&2; exit 2; }
  version=${pkg##*@}
  if [[ ! -x "$BIN/$name-$version" ]]; then
    command -v go >/dev/null || { echo "install-go-tools: Go toolchain not found" >&2; exit 1; }
    echo "install-go-tools: go install $pkg" >&2
    tmp="$BIN/.tmp-$name-$$"
    GOBIN="$tmp" go install "$pkg"
    mv "$tmp/$name" "$BIN/$name-$version"
    rmdir "$tmp"
  fi
  ln -sfn "$name-$version" "$BIN/$name"
done
echo "$BIN"
