"""The mesh CA and its signer, for a stack.

Devstack makes the mesh CA in memory, once per stack (``make run``, a test's stack): it
configures it as Consul's Connect CA root (agent config, in a 0600 file of a 0700
temporary directory, removed once the agent is up) and hands its key to the signer
(``python -m meshkit.security.signer --key-stdin``) on the signer's stdin. So no
``ca.key`` is left on disk, and of the stack's processes only devstack, Consul (the
built-in Connect CA provider holds it) and the signer ever hold the key. The public root
alone is written to ``<state>/ca/ca.pem`` (for tools and for ``--no-connect``, where
Consul's roots are not asked), the signer's URL to ``<state>/ca/signer.url``. A CA key an
earlier layout left in ``<state>/ca/`` is removed. (``make certs`` still makes a CA on
disk, in ``<state>/signer/``, for a signer run by hand; a stack does not use it.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from devstack.consul import ConsulAgent
from devstack.process import ReadyLineProcess
from meshkit.config import DEFAULT_MESH_FILE, MeshConfig, MeshPolicy
from meshkit.security.certificates import CA_CERT
from meshkit.security.pki import CA, CA_KEY, create_ca
from meshkit.security.signer import READY, dev_identity, public_ca_dir

_CAS: dict[Path, CA] = {}  # the CA of each state dir's stack, in this process's memory
# The port of each state dir's signer: a signer started again (with a restarted agent)
# keeps its URL, so the workloads already running keep renewing their leaves.
_PORTS: dict[Path, int] = {}


def new_ca(state: Path) -> CA:
    """A fresh mesh CA for a stack of ``state``: in memory, its public root written to
    ``<state>/ca/ca.pem``; any CA key left on disk by an earlier layout removed."""
    (public_ca_dir(state) / CA_KEY).unlink(missing_ok=True)  # an old layout's
    ca = create_ca()
    public_ca_dir(state).mkdir(parents=True, exist_ok=True)
    (public_ca_dir(state) / CA_CERT).write_bytes(ca.cert_pem)
    _CAS[state.resolve()] = ca
    return ca


def dev_ca(state: Path) -> CA:
    """The CA of the stack of ``state`` this process started (devstack's; a test acting
    as devstack forges leaves with it). It is nowhere on disk."""
    try:
        return _CAS[state.resolve()]
    except KeyError:
        raise LookupError(f"no stack of {state} was started by this process") from None


@dataclass
class SignerProcess(ReadyLineProcess):
    """The signer: gets the CA key on its stdin, ready when it prints
    ``SIGNER_READY {"url": ...}``."""

    stop_timeout: ClassVar[float] = 5.0
    key_pem: bytes = field(default=b"", repr=False)

    def _popen_options(self) -> dict[str, Any]:
        return {**super()._popen_options(), "stdin": subprocess.PIPE}

    def _popen(self, cmd: list[str]) -> subprocess.Popen[Any]:
        proc = super()._popen(cmd)
        assert proc.stdin is not None
        proc.stdin.write(self.key_pem.decode())
        proc.stdin.close()  # the key is in the signer's memory only, from now on
        self.key_pem = b""
        return proc

    def cleanup(self) -> None:
        if self.log is not None:
            self.log.close()  # its own file (start_signer opened it)
            self.log = None

    @property
    def url(self) -> str:
        return str(self.info["url"])


def start_signer(
    state: Path, consul: ConsulAgent, ca: CA, log_path: Path | None = None
) -> SignerProcess:
    """The signer of ``ca`` (its key on the signer's stdin), checking tokens with
    ``consul``, its output in ``log_path``; attached to the agent (``consul.signer``),
    stopped with it."""
    public = public_ca_dir(state)
    public.mkdir(parents=True, exist_ok=True)
    (public / CA_CERT).write_bytes(ca.cert_pem)
    log = open(log_path, "a") if log_path is not None else None  # noqa: SIM115
    proc = SignerProcess(
        "signer",
        argv=[
            sys.executable,
            "-m",
            "meshkit.security.signer",
            "--ca-dir",
            str(public),  # ca.pem only: the key comes on stdin
            "--key-stdin",
            "--consul",
            consul.http_addr,
            "--port",
            str(_PORTS.get(state.resolve(), 0)),
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        marker=READY,
        log=log,
        key_pem=ca.key_pem,
    ).start(30)
    consul.signer = proc
    _PORTS[state.resolve()] = int(proc.info["port"])
    (public / "signer.url").write_text(proc.url + "\n")  # for the tools
    return proc


def identity_config(state: Path, name: str, consul_http_addr: str) -> MeshConfig:
    """The mesh config of a client acting as ``name`` against the stack of ``state``: the
    identity's token and the signer's URL as devstack keeps them (``dev_identity``), the
    project's mesh file; for the load generator and the bench's clients."""
    token, signer = dev_identity(state, name)
    return MeshConfig(
        name=name,
        consul_http_addr=consul_http_addr,
        consul_token=token,
        signer_url=signer,
        state_dir=state,
        policy=MeshPolicy.load(DEFAULT_MESH_FILE),
    )
