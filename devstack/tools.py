"""Where the external binaries are: one resolution rule, shared with the Makefile."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def consul_binary() -> str:
    """Path of the Consul binary: on PATH, else cached, else built (scripts/install-consul.sh)."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-consul.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


@functools.cache
def go_tool(name: str) -> str:
    """Path of a pinned Go tool (grpcurl, ...), installed by scripts/install-go-tools.sh."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-go-tools.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return str(Path(out.stdout.strip().splitlines()[-1]) / name)


@functools.cache
def hydra_binary() -> str:
    """Path of Ory Hydra (the OAuth2/OIDC server): cached, else built (scripts/install-hydra.sh)."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-hydra.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]
