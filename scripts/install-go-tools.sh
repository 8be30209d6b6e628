#!/usr/bin/env bash
# Install the Go tools the project uses, pinned, from the Go module proxy, into
# ${MESHKIT_CACHE:-~/.cache/meshkit-shop}/bin (reused when present). Prints that directory.
#   grpcurl: calls services from the command line (README, tests).
#   ghz:     gRPC load generator (make bench).
set -euo pipefail
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
BIN="$CACHE_DIR/bin"
TOOLS=(
  "grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4"
  "ghz github.com/bojand/ghz/cmd/ghz@v0.120.0"
)
mkdir -p "$BIN"
for spec in "${TOOLS[@]}"; do
  name=${spec%% *}
  pkg=${spec#* }
  version=${pkg##*@}
  if [[ ! -x "$BIN/$name-$version" ]]; then
    echo "install-go-tools: go install $pkg" >&2
    GOBIN="$BIN/.tmp-$name" go install "$pkg"
    mv "$BIN/.tmp-$name/$name" "$BIN/$name-$version"
    rmdir "$BIN/.tmp-$name"
  fi
  ln -sf "$name-$version" "$BIN/$name"
done
echo "$BIN"
