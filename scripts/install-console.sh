#!/usr/bin/env bash
# The mesh console (console/, served by the gateway at /console), or the browser its tests
# drive:
#   install-console.sh page      `npm ci` from package-lock.json (vite, typescript,
#                                cytoscape), the unit tests (vitest), then `vite build` into
#                                console/dist (not committed): what make run needs
#   install-console.sh browser   Debian's chromium (/usr/bin/chromium) for tests/console
#                                (Playwright from PyPI drives it; no browser is downloaded)
# The last line names what was set up.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "install-console: $*" >&2; }
what=${1:?usage: install-console.sh page|browser}

if [[ $what == browser ]]; then
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
  echo "chromium ($(/usr/bin/chromium --version 2>/dev/null | awk '{print $1, $2}'))"
  exit 0
fi

cd console
say "npm ci"
npm ci --no-audit --no-fund --loglevel=error >&2
npx --no-install vitest run >&2
npx --no-install tsc --noEmit -p .
npx --no-install vite build --logLevel warn >&2
echo "console (vite $(npx --no-install vite --version | awk '{print $1}' | sed 's|.*/||'))"
