"""Render and check the Helm chart offline (docs/deploy.md).

The chart (deploy/helm/meshkit-shop) names Consul's and NATS's official charts as
dependencies; they cannot be downloaded here, and ``helm template`` refuses a chart whose
dependencies are missing even when their conditions are off. So the chart is rendered from
a copy (its symlinks to infra/ resolved) whose Chart.yaml lists only the dependencies
present in charts/: what is rendered is the chart's own objects, Consul and NATS disabled.

    python -m deploy.render --check-all   helm lint, then each value set rendered and
                                          decoded strictly (deploy/validate), and
                                          deploy/k8s/ compared with a fresh render
    python -m deploy.render --write       render deploy/k8s/meshkit-shop.yaml again
    python -m deploy.render --set dns     print one value set's render
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "meshkit-shop"
MANIFESTS = ROOT / "deploy" / "k8s" / "meshkit-shop.yaml"
MANIFEST_VALUES = ROOT / "deploy" / "k8s" / "values.yaml"
RELEASE, NAMESPACE = "meshkit", "meshkit-shop"
# The Kubernetes version rendered for (helm built by `go install` assumes v1.20 otherwise):
# within what consul-k8s 1.9 (Consul 1.22) supports, 1.30 to 1.34.
KUBE_VERSION = "1.34.0"

# The value sets the suite renders: name -> values files (in the chart's ci/).
VALUE_SETS: dict[str, list[Path]] = {
    "default": [],
    "dns": [CHART / "ci" / "dns-values.yaml"],
    "production": [CHART / "ci" / "production-values.yaml"],
    "minimal": [CHART / "ci" / "minimal-values.yaml"],
    "inline-secrets": [CHART / "ci" / "inline-secrets-values.yaml"],
    "manifests": [MANIFEST_VALUES],
}

HEADER = (
    "# Rendered from deploy/helm/meshkit-shop with deploy/k8s/values.yaml by `make manifests`\n"
    f"# (release {RELEASE}, namespace {NAMESPACE}); do not edit: change the chart.\n"
)


@functools.cache
def tool(name: str) -> str:
    """A pinned tool's path (helm, actionlint, k8s-validate): cached, else built."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-deploy-tools.sh"), name],
        check=True,
        capture_output=True,
        text=True,
    )
    return str(Path(out.stdout.strip().splitlines()[-1]) / name)


@contextmanager
def offline_chart(chart: Path = CHART) -> Iterator[Path]:
    """A copy of ``chart``, symlinks resolved, without the dependencies absent from charts/."""
    with tempfile.TemporaryDirectory(prefix="meshkit-chart-") as tmp:
        copy = Path(tmp) / chart.name
        shutil.copytree(chart, copy, symlinks=False)
        meta_file = copy / "Chart.yaml"
        meta = yaml.safe_load(meta_file.read_text())
        present = {p.name.split("-")[0] for p in (copy / "charts").glob("*")}
        deps = [d for d in meta.get("dependencies", []) if d["name"] in present]
        if deps:
            meta["dependencies"] = deps
        else:
            meta.pop("dependencies", None)
        meta_file.write_text(yaml.safe_dump(meta, sort_keys=False))
        yield copy


def helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    """``helm <args> <offline copy of chart>``, output captured (no check)."""
    with offline_chart(chart) as copy:
        return subprocess.run(
            [tool("helm"), *args, str(copy)], capture_output=True, text=True, check=False
        )


def render(value_set: str, extra: list[str] | None = None, chart: Path = CHART) -> str:
    """The objects ``helm template`` renders for a value set (an error if it fails)."""
    args = ["template", RELEASE, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    for path in VALUE_SETS[value_set]:
        args += ["--values", str(path)]
    done = helm(*args, *(extra or []), chart=chart)
    if done.returncode != 0:
        raise RuntimeError(f"helm template ({value_set}) failed:\n{done.stderr}")
    return done.stdout


def validate(manifests: str) -> subprocess.CompletedProcess[str]:
    """The strict decode of every object (deploy/validate): exit 0 when all are valid."""
    return subprocess.run(
        [tool("k8s-validate")], input=manifests, capture_output=True, text=True, check=False
    )


def lint(chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    """``helm lint`` of the chart itself (not the copy): the missing dependencies warn."""
    return subprocess.run(
        [tool("helm"), "lint", "--kube-version", KUBE_VERSION, str(chart)],
        capture_output=True,
        text=True,
        check=False,
    )


def manifests() -> str:
    """What deploy/k8s/meshkit-shop.yaml holds when it is current."""
    return HEADER + render("manifests")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.render", description=__doc__)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--check-all", action="store_true")
    g.add_argument("--write", action="store_true")
    g.add_argument("--set", choices=sorted(VALUE_SETS))
    a = p.parse_args(argv)
    if a.set:
        sys.stdout.write(render(a.set))
        return 0
    if a.write:
        MANIFESTS.write_text(manifests())
        print(f"wrote {MANIFESTS.relative_to(ROOT)}")
        return 0
    linted = lint()
    print(linted.stdout.strip())
    failed = linted.returncode != 0
    for name in VALUE_SETS:
        checked = validate(render(name))
        count = checked.stdout.count("\n")
        print(f"{name}: {count} objects, {'valid' if checked.returncode == 0 else 'INVALID'}")
        if checked.returncode != 0:
            print(checked.stdout + checked.stderr)
            failed = True
    if MANIFESTS.read_text() != manifests():
        print(f"{MANIFESTS.relative_to(ROOT)} is stale: make manifests")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
