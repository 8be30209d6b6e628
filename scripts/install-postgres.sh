#!/usr/bin/env bash
# Install PostgreSQL 15 (the database of `make run DATABASE=postgres` and tests/postgres):
# the machine image has it (initdb, postgres, pg_isready on the PATH, or in Debian's
# /usr/lib/postgresql/15/bin); else Debian's postgresql-15 from the system's apt sources.
# No cluster or service is created or started: devstack/postgres.py runs its own cluster,
# in the stack's state directory. Needs root for apt-get; another setup step may hold the
# dpkg lock, so it waits for it. Prints a label for `make setup`.
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "$BIN/$1" ]]; }

if ! have initdb || ! have postgres || ! have pg_isready; then
  (( EUID == 0 )) || { echo "install-postgres: apt-get needs root (sudo $0)" >&2; exit 1; }
  echo "install-postgres: apt-get install postgresql-15" >&2
  apt_get=(apt-get -o DPkg::Lock::Timeout=600)
  DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y --no-install-recommends \
    postgresql-15 >&2 || {
    "${apt_get[@]}" update >&2
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y --no-install-recommends \
      postgresql-15 >&2
  }
fi
postgres=$(command -v postgres || echo "$BIN/postgres")
version=$("$postgres" --version | awk '{print $3}')
echo "postgres $version"
