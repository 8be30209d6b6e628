#!/usr/bin/env bash
# Build the mesh console's page (console/, served by the gateway at /console) and install
# the browser its tests drive:
#   console/   `npm ci` from package-lock.json (vite, typescript, cytoscape), the unit tests
#              (vitest), then `vite build` into console/dist (not committed)
#   chromium   Debian's package (/usr/bin/chromium), for tests/console (Playwright from
#              PyPI drives it; no browser is downloaded), when it is missing
# The last line names what was set up.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "install-console: $*" >&2; }

if [[ ! -x /usr/bin/chromium ]]; then
  say "apt-get install chromium"
  if [[ $(id -u) -eq 0 ]]; then sudo=(); else sudo=(sudo); fi
  # Another step of `make setup` may hold apt's locks at the same moment: wait, then retry.
  for attempt in 1 2 3; do
    if "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install \
        -y --no-install-recommends chromium; then
      break
    fi
    ((attempt < 3)) || exit 1
    say "apt-get failed (attempt $attempt); again in 15 s"
    sleep 15
  done
fi

cd console
say "npm ci"
npm ci --no-audit --no-fund --loglevel=error >&2
npx --no-install vitest run >&2
npx --no-install tsc --noEmit -p .
npx --no-install vite build --logLevel warn >&2
echo "console (vite $(npx --no-install vite --version | awk '{print $1}' | sed 's|.*/||'), $(/usr/bin/chromium --version | awk '{print $1, $2}'))"
