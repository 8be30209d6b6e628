"""The mesh CA and its signer, for a stack.

The CA is made by devstack and kept in ``<state>/signer/`` (the directory 0700, ``ca.key``
0600): devstack reads it once to make it Consul's Connect CA root (agent config), and
starts the signer (``python -m meshkit.security.signer``) with it; no other process of
the stack opens that directory. The public root alone is also written to
``<state>/ca/ca.pem`` (for tools and for ``--no-connect``, where Consul's roots are not
asked). A ``ca.key`` left in ``<state>/ca/`` by an earlier version moves to the signer's
directory.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from devstack.consul import ConsulAgent
from devstack.process import ReadyLineProcess
from meshkit.security.certificates import CA
from meshkit.security.signer import READY, init_ca, public_ca_dir, signer_dir


def dev_ca(state: Path) -> CA:
    """The mesh CA of ``state``, made on first use (see :func:`init_ca`)."""
    return init_ca(state)


@dataclass
class SignerProcess(ReadyLineProcess):
    """The signer: ready when it prints ``SIGNER_READY {"url": ...}``."""

    stop_timeout: ClassVar[float] = 5.0

    def cleanup(self) -> None:
        if self.log is not None:
            self.log.close()  # its own file (start_signer opened it)
            self.log = None

    @property
    def url(self) -> str:
        return str(self.info["url"])


def start_signer(state: Path, consul: ConsulAgent, log_path: Path | None = None) -> SignerProcess:
    """The signer of ``state``'s CA, checking tokens with ``consul``, its output in
    ``log_path``; attached to the agent (``consul.signer``), stopped with it."""
    dev_ca(state)
    log = open(log_path, "a") if log_path is not None else None  # noqa: SIM115
    proc = SignerProcess(
        "signer",
        argv=[
            sys.executable,
            "-m",
            "meshkit.security.signer",
            "--ca-dir",
            str(signer_dir(state)),
            "--consul",
            consul.http_addr,
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        marker=READY,
        log=log,
    ).start(30)
    consul.signer = proc
    (public_ca_dir(state) / "signer.url").write_text(proc.url + "\n")  # for the tools
    return proc
