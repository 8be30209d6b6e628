"""Where the external binaries are: one resolution rule, shared with the Makefile."""

from __future__ import annotations

import functools
import subprocess
import threading
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One install at a time per script (two threads asking first must not both build).
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def installed(script: str) -> str:
    """The last line ``scripts/<script>`` prints (where what it installed is): it reuses
    what is cached, else installs it, as the Makefile's setup steps do."""
    with _locks[script]:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts" / script)],
            check=True,
            capture_output=True,
            text=True,
        )
    return out.stdout.strip().splitlines()[-1]


@functools.cache
def consul_binary() -> str:
    """Path of the Consul binary: on PATH, else cached, else built (scripts/install-consul.sh)."""
    return installed("install-consul.sh")


@functools.cache
def go_tool(name: str) -> str:
    """Path of a pinned Go tool (grpcurl, ...), installed by scripts/install-go-tools.sh."""
    return str(Path(installed("install-go-tools.sh")) / name)


@functools.cache
def hydra_binary() -> str:
    """Path of Ory Hydra (the OAuth2/OIDC server): cached, else built (scripts/install-hydra.sh)."""
    return installed("install-hydra.sh")
