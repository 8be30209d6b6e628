#!/usr/bin/env bash
# Install the Docker engine (Debian's docker.io: dockerd, containerd, runc) and debootstrap
# (the base image is made from the machine's own Debian mirror, no image registry), as root.
# Nothing is started here: devstack.docker_engine starts a dockerd of its own per run.
# Then the base tarballs and the wheels of the images (cached; see docs/containers.md).
# Prints a label for scripts/setup-step.sh.
set -euo pipefail
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
# (on a machine that is not Debian, debootstrap checks bookworm's signatures with this)
[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
  [[ $(id -u) == 0 ]] || { echo "install-docker: needs root for apt-get (${need[*]})" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt_get=(apt-get -o DPkg::Lock::Timeout=600)
  "${apt_get[@]}" install -y --no-install-recommends "${need[@]}" ||
    { "${apt_get[@]}" update && "${apt_get[@]}" install -y --no-install-recommends "${need[@]}"; }
fi
# The engine must not be the system's service (another socket, another data root).
if command -v systemctl >/dev/null && systemctl is-active --quiet docker 2>/dev/null; then
  echo "install-docker: note: a system docker service runs too; devstack does not use it" >&2
fi
# What the images are built from, made now rather than in the first build: the base
# images' root filesystems (debootstrap, once a day) and the pinned wheels (once per set).
cd "$(dirname "$0")/.."
"${PY:-.venv/bin/python}" -m devstack.containers prepare >&2
echo "docker engine $(dockerd --version | sed -E 's/^Docker version ([^,]+),.*/\1/')"
