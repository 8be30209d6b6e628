"""``python -m deploy.secrets``: the credentials the chart's ``existingSecret`` values name,
valid Kubernetes Secrets with the keys the chart reads, and the nats chart's users."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import render
from deploy.secrets import IDENTITIES
from devstack.nats import public_key, service_permissions
from meshkit.config import MeshPolicy
from meshkit.security.signer import load_ca


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("secrets") / "release"
    subprocess.run(
        [sys.executable, "-m", "deploy.secrets", "--out", str(out), "--namespace", "shop"],
        check=True,
        cwd=render.ROOT,
        capture_output=True,
    )
    return out


def secrets(made: Path) -> dict[str, dict[str, str]]:
    docs = [d for d in yaml.safe_load_all((made / "secrets.yaml").read_text()) if d]
    return {d["metadata"]["name"]: d["stringData"] for d in docs}


def test_files_are_private_and_never_overwritten(made: Path) -> None:
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    for name in ("secrets.yaml", "nats-values.yaml"):
        assert stat.S_IMODE((made / name).stat().st_mode) == 0o600
    again = subprocess.run(
        [sys.executable, "-m", "deploy.secrets", "--out", str(made)],
        cwd=render.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1 and "not overwritten" in again.stderr


def test_secrets_are_valid_and_hold_what_the_chart_reads(made: Path, tmp_path: Path) -> None:
    checked = render.validate((made / "secrets.yaml").read_text())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    data = secrets(made)
    # The names deploy/k8s/values.yaml and the production value set give existingSecret.
    values = yaml.safe_load(render.MANIFEST_VALUES.read_text())
    for key in ("consulTokens", "natsCredentials", "meshCA"):
        assert values[key]["existingSecret"] in data
    assert set(data["meshkit-consul-tokens"]) == set(IDENTITIES)
    assert set(data["meshkit-nats-creds"]) == {f"{i}.nk" for i in ("admin", *IDENTITIES)}
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    for key, text in data["meshkit-mesh-ca"].items():
        (ca_dir / key).write_text(text)
    ca = load_ca(ca_dir)  # what the signer pod does with the mounted Secret
    connect = json.loads(data["meshkit-consul-connect-ca"]["connect-ca.json"])["connect"]
    assert connect["ca_config"]["root_cert"] == ca.cert_pem.decode()


def test_nats_values_list_each_identity_with_its_permissions(made: Path) -> None:
    values = yaml.safe_load((made / "nats-values.yaml").read_text())
    users: list[dict[str, Any]] = values["nats"]["config"]["merge"]["authorization"]["users"]
    seeds = secrets(made)["meshkit-nats-creds"]
    by_key = {u["nkey"]: u for u in users}
    events = MeshPolicy.load(render.ROOT / "infra" / "mesh" / "mesh.toml").events
    assert "permissions" not in by_key[public_key(seeds["admin.nk"].strip())]
    for identity in IDENTITIES:
        user = by_key[public_key(seeds[f"{identity}.nk"].strip())]
        assert user["permissions"] == service_permissions(identity, events)
