"""Operator commands of the mesh: ``python -m meshkit.tools.certs certs ...``.

``certs init`` creates the dev CA (``make certs``); ``certs issue NAME`` writes a leaf for
NAME, e.g. ``operator`` for grpcurl, in the trust domain of the running Consul.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

from meshkit.config import DEFAULT_STATE_DIR
from meshkit.security.certificates import CA_CERT, issue_leaf, load_or_create_ca, service_dns_names
from meshkit.security.identity import SpiffeId
from meshkit.security.secrets import write_secret


def consul_trust_domain(http_addr: str) -> str:
    """The trust domain of the Connect CA of the Consul agent at ``host:port``."""
    url = f"http://{http_addr}/v1/agent/connect/ca/roots"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(json.loads(resp.read())["TrustDomain"])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m meshkit.tools.certs", description=__doc__)
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    sub = p.add_subparsers(dest="cmd", required=True)
    certs = sub.add_parser("certs", help="the dev CA and certificates for tools")
    csub = certs.add_subparsers(dest="action", required=True)
    csub.add_parser("init", help="create the CA (kept if it exists)")
    issue = csub.add_parser("issue", help="write a leaf for NAME into <state>/certs/NAME/")
    issue.add_argument("name")
    issue.add_argument("--consul", default="127.0.0.1:8500", help="whose trust domain to use")
    issue.add_argument("--trust-domain", help="instead of asking Consul")
    issue.add_argument("--ttl", type=float, default=24 * 3600.0, help="seconds")
    a = p.parse_args(argv)

    ca = load_or_create_ca(a.state_dir / "ca")
    if a.action == "init":
        print(a.state_dir / "ca" / CA_CERT)
        return
    trust_domain = a.trust_domain or consul_trust_domain(a.consul)
    leaf = issue_leaf(ca, SpiffeId(trust_domain, a.name), service_dns_names(a.name), a.ttl)
    out = a.state_dir / "certs" / a.name
    write_secret(out / "key.pem", leaf.key_pem)  # 0600 from the start; creates out 0700
    (out / "cert.pem").write_bytes(leaf.cert_pem)
    (out / "ca.pem").write_bytes(ca.cert_pem)
    print(out)


if __name__ == "__main__":
    main()
