"""What a pod of the chart would start with: the environment and files a rendered
Deployment gives its container, read by the runtime's own configuration code
(``MeshConfig.from_args``, ``GatewayConfig.from_args``, the discovery backend, the
signer's flags). No cluster here: the Kubernetes parts (downward API, mounted ConfigMaps
and Secrets) are resolved as the kubelet would, into a temporary directory."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import render
from meshkit.config import MeshConfig, MeshPolicy
from meshkit.discovery.dns import DnsDiscovery
from services.gateway.config import GatewayConfig

POD = {
    "status.podIP": "10.1.2.3",
    "status.hostIP": "10.0.0.7",
    "metadata.name": "pod-abc",
    "metadata.namespace": render.NAMESPACE,
}


@pytest.fixture(scope="module")
def renders(rendered: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [d for d in yaml.safe_load_all(rendered[name]) if d] for name in ("default", "dns")
    }


def named(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def pod_environment(
    objs: list[dict[str, Any]], deployment: str, root: Path
) -> tuple[dict[str, str], list[str]]:
    """The container's environment and arguments, its volumes written under ``root``
    (a mount path /x/y becomes root/x/y, and so do the paths in the environment)."""
    spec = named(objs, "Deployment", deployment)["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = named(objs, "ConfigMap", volume["configMap"]["name"])["data"]
            for key, text in data.items():
                (target / key).write_text(text)
        elif "secret" in volume:
            secret = next(
                (
                    o
                    for o in objs
                    if o["kind"] == "Secret"
                    and o["metadata"]["name"] == volume["secret"]["secretName"]
                ),
                None,
            )
            data = {
                k: base64.b64decode(v).decode() for k, v in (secret or {}).get("data", {}).items()
            }
            for item in volume["secret"].get("items", []):
                # A Secret made outside the chart (NATS seeds, the CA): a stand-in value.
                text = data.get(item["key"], f"stand-in for {item['key']}")
                (target / item["path"]).write_text(text)
            for key, text in data.items():
                if not volume["secret"].get("items"):
                    (target / key).write_text(text)
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), e["value"])
            env[e["name"]] = value.replace("/etc/meshkit", str(root / "etc" / "meshkit")).replace(
                "/var/lib/meshkit", str(root / "var" / "lib" / "meshkit")
            )
        else:
            env[e["name"]] = POD[e["valueFrom"]["fieldRef"]["fieldPath"]]
    args = [
        a.replace("/etc/meshkit", str(root / "etc" / "meshkit")) for a in container.get("args", [])
    ]
    return env, args


@pytest.mark.parametrize("service", ["inventory", "order", "payment", "shipping"])
def test_a_service_pod_configures_the_runtime(
    renders: dict[str, list[dict[str, Any]]],
    service: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objs = renders["default"]
    env, _ = pod_environment(objs, service, tmp_path)
    for key in [k for k in os.environ if k.startswith(("MESH_", "CONSUL_", "NATS_", "GATEWAY_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = MeshConfig.from_args(service, [])
    assert (config.host, config.port) == ("10.1.2.3", 50051)
    # The health port on the pod's IP: where the kubelet's gRPC probe and Consul reach it.
    assert (config.health_host, config.health_port) == ("10.1.2.3", 8086)
    assert config.instance_id == "pod-abc"
    assert config.consul_http_addr == "10.0.0.7:8500"  # the node's agent
    tokens = named(objs, "Secret", "meshkit-consul-tokens")["data"]
    assert config.consul_token == base64.b64decode(tokens[service]).decode()
    assert config.signer_url == "https://signer:8443"
    assert config.nats_url == "nats://meshkit-nats:4222"
    assert config.nats_creds is not None and config.nats_creds.name == f"{service}.nk"
    assert config.nats_creds.is_file()
    assert (config.discovery, config.broker, config.database) == ("consul", "nats", "sqlite")
    assert config.connect and not config.insecure
    assert config.db_path.is_relative_to(tmp_path / "var" / "lib" / "meshkit")
    assert not config.local_traces  # no trace file in a pod: OTLP or nothing
    assert config.log_json
    # mesh.toml from the ConfigMap
    assert config.policy == MeshPolicy.load(render.ROOT / "infra" / "mesh" / "mesh.toml")


def test_dns_discovery_resolves_the_headless_services(
    renders: dict[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = pod_environment(renders["dns"], "order", tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = MeshConfig.from_args("order", [])
    assert config.discovery == "dns"
    discovery = DnsDiscovery.from_url(config.discovery_url)
    # The SRV name of the headless Service inventory's port grpc, in the pod's namespace.
    assert discovery.name_of("inventory") == (
        f"_grpc._tcp.inventory.{render.NAMESPACE}.svc.cluster.local."
    )
    assert named(renders["dns"], "Service", "inventory")["spec"]["ports"][0]["name"] == "grpc"


def test_the_gateway_pod_configures_the_gateway(
    renders: dict[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = pod_environment(renders["default"], "gateway", tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = GatewayConfig.from_args([])
    assert (config.host, config.port) == ("10.1.2.3", 8080)
    assert config.issuer == "http://hydra-public:4444"
    assert config.policy.services["shop.order.v1.OrderService"].mesh_name == "order"
    assert config.mesh.name == "gateway" and config.mesh.consul_http_addr == "10.0.0.7:8500"


def test_the_signer_pod_passes_flags_the_signer_knows(
    renders: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, args = pod_environment(renders["default"], "signer", tmp_path)
    usage = subprocess.run(
        [sys.executable, "-m", "meshkit.security.signer", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=render.ROOT,
    ).stdout
    for arg in args:
        flag = arg.split("=", 1)[0]
        assert flag in usage, flag
    assert "--key-stdin" not in args  # the key is the mounted Secret's ca.key
