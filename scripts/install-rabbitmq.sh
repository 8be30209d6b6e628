#!/usr/bin/env bash
# Install RabbitMQ (the broker of `make run BROKER=rabbitmq` and tests/brokers): Debian's
# rabbitmq-server (3.10.8 on bookworm) with its Erlang runtime, from the system's apt
# sources. No service is enabled or started: devstack/brokers/rabbitmq.py runs the node
# itself, on its own ports, data directory and epmd (a node the package itself may have
# started, on Ubuntu, is left alone). Needs root or passwordless sudo (apt-get); another
# setup step may hold the dpkg lock, so it waits for it. Prints a label for `make setup`.
set -euo pipefail
SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server

if [[ ! -x "$SERVER" ]]; then
  # root, or a user with passwordless sudo (a CI runner)
  if (( EUID == 0 )); then
    as_root=()
  elif sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "install-rabbitmq: apt-get needs root (sudo $0)" >&2
    exit 1
  fi
  echo "install-rabbitmq: apt-get install rabbitmq-server" >&2
  apt_get=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
  "${apt_get[@]}" install -y --no-install-recommends rabbitmq-server >&2 || {
    "${apt_get[@]}" update >&2
    "${apt_get[@]}" install -y --no-install-recommends rabbitmq-server >&2
  }
fi
version=$(dpkg-query -W -f '${Version}' rabbitmq-server)
echo "rabbitmq ${version%%-*}"
