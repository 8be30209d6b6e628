"""The credentials of a release, made once by the operator (docs/deploy.md):

    python -m deploy.secrets --out <dir> [--prefix meshkit] [--namespace <ns>]

writes, each file 0600 in a 0700 directory (never commit them):

- ``secrets.yaml``: the Secrets the chart's ``existingSecret`` values name, made as
  devstack makes the same credentials: ``<prefix>-mesh-ca`` (a new mesh CA, ECDSA P-256:
  ``ca.pem``, ``ca.key``), ``<prefix>-consul-connect-ca`` (a Consul config file making that
  CA Connect's root, for the consul chart's ``server.extraVolumes``), ``<prefix>-consul-tokens``
  (a UUID per identity: the bootstrap job creates them in Consul) and ``<prefix>-nats-creds``
  (an nkey seed per identity, ``admin`` included);
- ``nats-values.yaml``: the nats chart's values for the same identities (public keys and
  each one's permissions, from mesh.toml's [events] as devstack/nats.py makes them).

``kubectl apply -n <ns> -f secrets.yaml``, then ``helm install ... -f nats-values.yaml``.
An existing file is never overwritten.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import nkeys
import yaml

from devstack.nats import ADMIN, public_key, service_permissions
from meshkit.config import DEFAULT_MESH_FILE, MeshPolicy
from meshkit.security.pki import consul_ca_config, create_ca
from meshkit.security.secrets import write_secret

ROOT = Path(__file__).resolve().parent.parent
IDENTITIES = ("inventory", "order", "payment", "shipping", "gateway")


def new_seed() -> str:
    """A NATS user's nkey seed (``SU...``)."""
    return nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()


def secret(name: str, data: dict[str, str], namespace: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/part-of": "meshkit-shop"}}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "stringData": data,
    }


def make(prefix: str, namespace: str | None, mesh_file: Path) -> tuple[str, str]:
    """The text of ``secrets.yaml`` and of ``nats-values.yaml``."""
    events = MeshPolicy.load(mesh_file).events
    ca = create_ca(f"{prefix} mesh CA")
    seeds = {identity: new_seed() for identity in (ADMIN, *IDENTITIES)}
    secrets = [
        secret(
            f"{prefix}-mesh-ca",
            {"ca.pem": ca.cert_pem.decode(), "ca.key": ca.key_pem.decode()},
            namespace,
        ),
        secret(
            f"{prefix}-consul-connect-ca",
            {"connect-ca.json": json.dumps(consul_ca_config(ca), indent=2)},
            namespace,
        ),
        secret(f"{prefix}-consul-tokens", {i: str(uuid.uuid4()) for i in IDENTITIES}, namespace),
        secret(
            f"{prefix}-nats-creds",
            {f"{i}.nk": seed + "\n" for i, seed in seeds.items()},
            namespace,
        ),
    ]
    users: list[dict[str, Any]] = [{"nkey": public_key(seeds[ADMIN])}]
    users += [
        {"nkey": public_key(seeds[i]), "permissions": service_permissions(i, events)}
        for i in IDENTITIES
    ]
    values = {"nats": {"config": {"merge": {"authorization": {"users": users}}}}}
    header = "# Made by python -m deploy.secrets: credentials, never commit.\n"
    return (
        header + yaml.safe_dump_all(secrets, sort_keys=False),
        header + yaml.safe_dump(values, sort_keys=False),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.secrets", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="a directory for the two files")
    p.add_argument("--prefix", default="meshkit", help="the Secrets' names' prefix")
    p.add_argument("--namespace", help="the Secrets' namespace (else kubectl's -n)")
    p.add_argument("--mesh-file", type=Path, default=ROOT / DEFAULT_MESH_FILE)
    a = p.parse_args(argv)
    targets = [a.out / "secrets.yaml", a.out / "nats-values.yaml"]
    if existing := [str(t) for t in targets if t.exists()]:
        print(f"deploy.secrets: {', '.join(existing)} exist(s): not overwritten", file=sys.stderr)
        return 1
    texts = make(a.prefix, a.namespace, a.mesh_file)
    for target, text in zip(targets, texts, strict=True):
        write_secret(target, text)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
