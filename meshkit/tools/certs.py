"""Operator commands of the mesh: ``python -m meshkit.tools.certs certs ...``.

``certs init`` creates a dev CA on disk in ``<state>/signer/`` (``make certs``; the public
root in ``<state>/ca/ca.pem``), for a signer run by hand (``python -m
meshkit.security.signer --ca-dir .state/signer``); ``make run`` and the tests keep their CA
in memory instead and hand its key to their signer; ``certs issue NAME`` writes a leaf for
NAME, e.g. ``operator`` for grpcurl, into ``<state>/certs/NAME/``: a key made here and a CSR
to the signer, which signs it only if the Consul token presented holds NAME's identity. The
CA key is never read by ``issue``. The token: ``--token-file`` (default
``<state>/consul/tokens/NAME.token``, where devstack keeps each identity's token, else
``$CONSUL_HTTP_TOKEN``); the signer: ``--signer`` (default ``$MESH_SIGNER_URL``, else
``<state>/ca/signer.url``, which devstack writes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import urllib.request
from pathlib import Path

from meshkit.config import DEFAULT_STATE_DIR
from meshkit.security.certificates import CA_CERT, SignerClient, read_token
from meshkit.security.secrets import write_secret
from meshkit.security.signer import dev_identity, init_ca, public_ca_dir


def consul_trust_domain(http_addr: str) -> str:
    """The trust domain of the Connect CA of the Consul agent at ``host:port``."""
    url = f"http://{http_addr}/v1/agent/connect/ca/roots"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(json.loads(resp.read())["TrustDomain"])


def consul_roots(http_addr: str) -> bytes:
    """Every Connect CA root PEM of the Consul agent at ``host:port`` (public)."""
    with urllib.request.urlopen(f"http://{http_addr}/v1/agent/connect/ca/roots", timeout=5) as r:
        body = json.loads(r.read())
    return "".join(root["RootCert"].strip() + "\n" for root in body["Roots"]).encode()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m meshkit.tools.certs", description=__doc__)
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    sub = p.add_subparsers(dest="cmd", required=True)
    certs = sub.add_parser("certs", help="the dev CA and certificates for tools")
    csub = certs.add_subparsers(dest="action", required=True)
    csub.add_parser("init", help="create the CA (kept if it exists)")
    issue = csub.add_parser("issue", help="write a leaf for NAME into <state>/certs/NAME/")
    issue.add_argument("name")
    issue.add_argument("--consul", default="127.0.0.1:8500", help="whose CA roots to trust")
    issue.add_argument("--ca-file", type=Path, help="the CA root instead of Consul's roots")
    issue.add_argument("--signer", default=os.environ.get("MESH_SIGNER_URL", ""))
    issue.add_argument("--token-file", type=Path, help="NAME's Consul ACL token")
    issue.add_argument("--ttl", type=float, default=24 * 3600.0, help="seconds")
    a = p.parse_args(argv)

    if a.action == "init":
        init_ca(a.state_dir)
        print(public_ca_dir(a.state_dir) / CA_CERT)
        return
    token, signer = dev_identity(a.state_dir, a.name)
    signer = a.signer or signer
    if not signer:
        raise SystemExit("no signer: --signer, $MESH_SIGNER_URL, or a running `make run`")
    if a.token_file:
        token = read_token(a.token_file)
    if not token:
        raise SystemExit(f"no Consul token for {a.name}: --token-file or $CONSUL_HTTP_TOKEN")
    roots = a.ca_file.read_bytes() if a.ca_file else consul_roots(a.consul)
    leaf = asyncio.run(SignerClient(signer, token).sign(a.name, a.ttl, roots))
    out = a.state_dir / "certs" / a.name
    write_secret(out / "key.pem", leaf.key_pem)  # 0600 from the start; creates out 0700
    (out / "cert.pem").write_bytes(leaf.cert_pem)
    (out / "ca.pem").write_bytes(roots)
    print(out)


if __name__ == "__main__":
    main()
