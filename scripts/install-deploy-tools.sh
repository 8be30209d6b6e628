#!/usr/bin/env bash
# Install the tools that check the deployment files offline, pinned, into
# ${MESHKIT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/meshkit-shop}/bin (reused when present).
# Prints that directory.
#   helm:         renders and lints the chart (deploy/helm/meshkit-shop), from the Go module proxy
#   actionlint:   checks the GitHub Actions workflows (.github/workflows)
#   ShellCheck:   what actionlint checks the workflows' scripts with (Debian's package)
#   k8s-validate: deploy/validate, the strict decoder of manifests against k8s.io/api; cached
#                 by the hash of its sources, so an edit there builds it again
#   usage: scripts/install-deploy-tools.sh [name...]   (no name: every tool)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE_DIR="${MESHKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshkit-shop}"
BIN="$CACHE_DIR/bin"
declare -A TOOLS=(
  [helm]="helm.sh/helm/v3/cmd/helm@v3.22.0"
  [actionlint]="github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"
)
names=("$@")
((${#names[@]})) || names=(helm actionlint shellcheck k8s-validate)
mkdir -p "$BIN"
command -v go >/dev/null || { echo "install-deploy-tools: Go toolchain not found" >&2; exit 1; }

validator_version() {
  cat deploy/validate/go.mod deploy/validate/go.sum deploy/validate/*.go | sha256sum | cut -c1-12
}

for name in "${names[@]}"; do
  if [[ "$name" == shellcheck ]]; then
    if ! command -v shellcheck >/dev/null; then
      echo "install-deploy-tools: apt-get install shellcheck" >&2
      sudo=()
      ((EUID == 0)) || sudo=(sudo)
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y --no-install-recommends shellcheck >&2 || {
        "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update >&2
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
          install -y --no-install-recommends shellcheck >&2
      }
    fi
    ln -sfn "$(command -v shellcheck)" "$BIN/shellcheck"
    continue
  elif [[ "$name" == k8s-validate ]]; then
    version=$(validator_version)
    if [[ ! -x "$BIN/$name-$version" ]]; then
      echo "install-deploy-tools: go build deploy/validate" >&2
      (cd deploy/validate && GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" \
        -o "$BIN/.tmp-$name-$$" .)
      mv "$BIN/.tmp-$name-$$" "$BIN/$name-$version"
    fi
  else
    pkg=${TOOLS[$name]:-}
    [[ -n "$pkg" ]] || {
      echo "install-deploy-tools: unknown tool $name (${!TOOLS[*]} shellcheck k8s-validate)" >&2
      exit 2
    }
    version=${pkg##*@}
    if [[ ! -x "$BIN/$name-$version" ]]; then
      echo "install-deploy-tools: go install $pkg" >&2
      tmp="$BIN/.tmp-$name-$$"
      GOBIN="$tmp" go install -trimpath -ldflags="-s -w" "$pkg"
      mv "$tmp/$name" "$BIN/$name-$version"
      rmdir "$tmp"
    fi
  fi
  ln -sfn "$name-$version" "$BIN/$name"
done
echo "$BIN"
