"""The Helm chart, checked offline (no cluster can run here; docs/deploy.md): ``helm lint``,
``helm template`` of each value set, and the strict decode of every rendered object
against the Kubernetes API types (deploy/validate, k8s.io/api). Consul's and NATS's charts
are dependencies that cannot be downloaded here: rendered with both disabled."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import render

SERVICES = ("inventory", "order", "payment", "shipping")
WORKLOADS = (*SERVICES, "gateway")


def objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


@pytest.fixture(scope="module")
def default(rendered: dict[str, str]) -> list[dict[str, Any]]:
    return objects(rendered["default"])


def test_lint_passes_with_only_the_dependencies_missing() -> None:
    done = render.lint()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout
    warnings = [line for line in done.stdout.splitlines() if line.startswith("[WARNING]")]
    assert warnings == [
        f"[WARNING] {render.CHART}: chart directory is missing these dependencies: consul,nats"
    ]


@pytest.mark.parametrize("value_set", sorted(render.VALUE_SETS))
def test_every_object_decodes_strictly(rendered: dict[str, str], value_set: str) -> None:
    checked = render.validate(rendered[value_set])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    kinds = [line.split()[2] for line in checked.stdout.splitlines()]
    # 4 services, the gateway (not in the minimal set), the signer
    assert kinds.count("Deployment") == (5 if value_set == "minimal" else 6)
    assert len(kinds) == len(objects(rendered[value_set]))


def test_a_broken_object_fails_the_validation(default: list[dict[str, Any]]) -> None:
    """Each kind of mistake fails, naming its object: an unknown field (a typo), a value
    of the wrong type, a kind that is no API type, a duplicated key."""
    deployment = next(o for o in default if o["kind"] == "Deployment")
    typo = json.loads(json.dumps(deployment))
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")
    wrong_type = json.loads(json.dumps(deployment))
    wrong_type["metadata"]["name"] = "wrong-type"
    wrong_type["spec"]["replicas"] = "two"
    unknown_kind = {"apiVersion": "v1", "kind": "Deploymnet", "metadata": {"name": "k"}}
    stream = "---\n".join(yaml.safe_dump(o) for o in (typo, wrong_type, unknown_kind))
    stream += "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\n  name: again\n"
    checked = render.validate(stream)
    assert checked.returncode == 1
    errors = checked.stdout.splitlines()
    assert len(errors) == 4 and all(e.startswith("error ") for e in errors), errors
    assert 'unknown field "spec.template.spec.containers[0].readinessProbes"' in errors[0]
    assert "wrong-type" in errors[1] and "spec.replicas of type int32" in errors[1]
    assert "unknown kind" in errors[2]
    assert 'key "name" already set' in errors[3]
    assert "4 object(s) failed" in checked.stderr


def test_a_broken_template_fails_the_suite(tmp_path: Path) -> None:
    """A template with a typo renders (helm does not know the API) but fails the decode."""
    chart = tmp_path / "meshkit-shop"
    shutil.copytree(render.CHART, chart, symlinks=False)
    (chart / "templates" / "broken.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n"
        "spec:\n  selector: {a: b}\n  ports:\n    - port: 80\n      targetPortt: 8080\n"
    )
    checked = render.validate(render.render("default", chart=chart))
    assert checked.returncode == 1
    (error,) = [line for line in checked.stdout.splitlines() if line.startswith("error ")]
    assert "v1 Service /broken: strict decoding error" in error
    assert 'unknown field "spec.ports[0].targetPortt"' in error


def test_deployments_are_probed_bounded_and_locked_down(default: list[dict[str, Any]]) -> None:
    deployments = by_kind(default, "Deployment")
    assert set(deployments) == {*WORKLOADS, "signer"}
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"], name
        assert set(container["resources"]) == {"requests", "limits"}, name
        assert "readinessProbe" in container and "livenessProbe" in container, name
    for name in SERVICES:
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        health = int(env["MESH_HEALTH_PORT"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": health}, (name, probe)
        # The health port listens on the pod's IP, where the kubelet probes it.
        assert env["MESH_HEALTH_HOST"] == "$(POD_IP)" and env["MESH_HOST"] == "$(POD_IP)"
        assert container["image"] == f"meshkit/{name}:0.1.0"


def test_services_are_headless_with_a_grpc_port_for_srv(default: list[dict[str, Any]]) -> None:
    services = by_kind(default, "Service")
    for name in SERVICES:
        spec = services[name]["spec"]
        assert spec["clusterIP"] == "None"
        assert [p["name"] for p in spec["ports"]] == ["grpc"]  # _grpc._tcp.<name>...
        assert spec["ports"][0]["protocol"] == "TCP"


def test_selectors_match_the_pods_they_mean(default: list[dict[str, Any]]) -> None:
    """Every Service, PodDisruptionBudget and NetworkPolicy selects a Deployment's pods."""
    pods = [
        d["spec"]["template"]["metadata"]["labels"] for d in by_kind(default, "Deployment").values()
    ]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= labels.items() for labels in pods)

    for svc in by_kind(default, "Service").values():
        assert selects(svc["spec"]["selector"]), svc["metadata"]["name"]
    pdbs = by_kind(default, "PodDisruptionBudget")
    assert set(pdbs) == {*WORKLOADS, "signer"}
    for pdb in pdbs.values():
        assert selects(pdb["spec"]["selector"]["matchLabels"]), pdb["metadata"]["name"]
        assert pdb["spec"]["maxUnavailable"] == 1
    for name in (*WORKLOADS, "signer"):
        policy = by_kind(default, "NetworkPolicy")[name]
        assert selects(policy["spec"]["podSelector"]["matchLabels"]), name


def test_network_policies_allow_what_the_intentions_allow(default: list[dict[str, Any]]) -> None:
    policies = by_kind(default, "NetworkPolicy")
    deny = policies["meshkit-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny
    assert "egress" not in deny

    def grpc_callers(name: str) -> set[str]:
        rules = policies[name]["spec"]["ingress"]
        return {
            peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
            for rule in rules
            if rule["ports"][0]["port"] == "grpc"
            for peer in rule["from"]
        }

    # infra/consul/intentions: inventory <- order, gateway; order <- gateway; payment and
    # shipping <- operator only (no workload of the release): no gRPC caller at all.
    assert grpc_callers("inventory") == {"order", "gateway"}
    assert grpc_callers("order") == {"gateway"}
    assert grpc_callers("payment") == set() and grpc_callers("shipping") == set()
    gateway_egress = policies["gateway"]["spec"]["egress"]
    callees = {
        peer["podSelector"]["matchLabels"].get("app.kubernetes.io/name")
        for rule in gateway_egress
        for peer in rule.get("to", [])
        if "podSelector" in peer
    }
    assert {"order", "inventory", "nats", "signer"} <= callees
    dns = policies["meshkit-dns-consul"]["spec"]["egress"]
    assert {p["port"] for rule in dns for p in rule["ports"]} == {53, 8500}


def test_config_maps_hold_the_projects_policy(default: list[dict[str, Any]]) -> None:
    maps = by_kind(default, "ConfigMap")
    root = render.ROOT / "infra"
    policy = maps["meshkit-mesh-policy"]["data"]
    assert tomllib.loads(policy["mesh.toml"]) == tomllib.loads(
        (root / "mesh" / "mesh.toml").read_text()
    )
    assert tomllib.loads(policy["gateway.toml"]) == tomllib.loads(
        (root / "gateway" / "gateway.toml").read_text()
    )
    intentions = maps["meshkit-intentions"]["data"]
    files = sorted((root / "consul" / "intentions").glob("*.json"))
    assert sorted(intentions) == [f.name for f in files]
    for f in files:
        assert json.loads(intentions[f.name]) == json.loads(f.read_text())


def test_credentials_are_secrets_never_config(rendered: dict[str, str]) -> None:
    """Tokens come from a Secret; the plain manifests and the production set reference
    Secrets made outside the chart and carry none."""
    default = objects(rendered["default"])
    tokens = by_kind(default, "Secret")["meshkit-consul-tokens"]["data"]
    assert set(tokens) == set(WORKLOADS)
    for value_set in ("manifests", "production"):
        assert not by_kind(objects(rendered[value_set]), "Secret"), value_set
    for d in by_kind(default, "Deployment").values():
        for e in d["spec"]["template"]["spec"]["containers"][0].get("env", []):
            assert "TOKEN" not in e["name"] or e["name"].endswith("_FILE"), e


def test_dns_value_set_selects_kubernetes_dns(rendered: dict[str, str]) -> None:
    order = by_kind(objects(rendered["dns"]), "Deployment")["order"]
    env = {
        e["name"]: e.get("value") for e in order["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MESH_DISCOVERY"] == "dns"
    assert env["MESH_DISCOVERY_URL"] == (
        "dns:///?name=_grpc._tcp.{service}.{namespace}.svc.cluster.local"
    )


def test_production_value_set(rendered: dict[str, str]) -> None:
    prod = objects(rendered["production"])
    deployments = by_kind(prod, "Deployment")
    assert deployments["order"]["spec"]["replicas"] == 3
    container = deployments["order"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/meshkit/order:0.1.0"
    env = {e["name"]: e for e in container["env"]}
    assert env["MESH_DATABASE"]["value"] == "postgres"
    assert env["MESH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "meshkit-database",
        "key": "order",
    }
    ingress = by_kind(prod, "Ingress")["gateway"]["spec"]
    assert ingress["tls"][0]["hosts"] == ["shop.example.com"]


def test_plain_manifests_are_current(rendered: dict[str, str]) -> None:
    """deploy/k8s/meshkit-shop.yaml is what the chart renders (``make manifests``)."""
    current = render.HEADER + rendered["manifests"]
    assert render.MANIFESTS.read_text() == current, "stale: run make manifests"


def test_chart_files_are_the_projects() -> None:
    """The chart's files/ are links to infra/, not copies that could drift."""
    files = render.CHART / "files"
    for link in [files / "mesh.toml", files / "gateway.toml", *files.glob("intentions/*")]:
        assert link.is_symlink(), link
        assert Path(link.resolve()).is_relative_to(render.ROOT / "infra"), link


def test_bad_values_are_refused_naming_the_field() -> None:
    """values.schema.json: a typo'd key or a value out of its set fails the render."""
    with pytest.raises(RuntimeError) as err:
        render.render(
            "default", ["--set", "mesh.discovery=dsn", "--set", "services.order.replicaz=2"]
        )
    assert "at '/mesh/discovery': value must be one of 'consul', 'dns', 'eureka'" in str(err.value)
    assert "at '/services/order': additional properties 'replicaz' not allowed" in str(err.value)


def test_job_scripts_pass_shellcheck(default: list[dict[str, Any]], tmp_path: Path) -> None:
    """The hooks' shell scripts (Consul bootstrap, NATS stream), as /bin/sh runs them."""
    jobs = by_kind(default, "Job")
    assert set(jobs) == {"meshkit-consul-bootstrap", "meshkit-nats-stream"}
    for name, job in jobs.items():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["/bin/sh", "-ec"]
        script = tmp_path / f"{name}.sh"
        script.write_text(container["args"][0])
        checked = subprocess.run(
            [render.tool("shellcheck"), "--shell=sh", str(script)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout
