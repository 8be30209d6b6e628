"""The GitHub Actions workflows (.github/workflows), checked offline by actionlint (with
ShellCheck over their scripts): they cannot run here, so what can be known without
GitHub is checked: syntax, expressions, action inputs, scripts, and that CI covers every
tier of tests/ through make targets that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.render import ROOT, tool

WORKFLOWS = ROOT / ".github" / "workflows"


def actionlint(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    shellcheck = tool("shellcheck")
    return subprocess.run(
        [tool("actionlint"), "-color=false", "-shellcheck", shellcheck, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def workflow(name: str) -> dict[Any, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_actionlint_passes() -> None:
    done = actionlint()
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path: Path) -> None:
    """A typo'd key, an unknown context property, a script ShellCheck faults: each named."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-onn: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo ${{ github.nope_nope }}\n"
        "  b:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: for f in $(ls *.txt); do cat $f; done\n"
    )
    done = actionlint(str(bad), cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert 'unexpected key "runs-onn"' in done.stdout
    assert "nope_nope" in done.stdout
    assert "shellcheck reported issue" in done.stdout


def make_targets() -> set[str]:
    text = "\n".join(p.read_text() for p in [ROOT / "Makefile", *ROOT.glob("mk/*.mk")])
    return {m.group(1) for m in re.finditer(r"^([a-z][a-z0-9-]*):", text, re.MULTILINE)}


def runs(wf: dict[Any, Any]) -> list[str]:
    return [s["run"] for job in wf["jobs"].values() for s in job.get("steps", []) if "run" in s]


def test_ci_runs_every_tier_through_make() -> None:
    ci = workflow("ci.yml")
    assert {"lint", "unit", "tier", "images", "chart"} <= set(ci["jobs"])
    tiers = {row["tier"] for row in ci["jobs"]["tier"]["strategy"]["matrix"]["include"]}
    # Every directory of tests/ with tests in it is a job's (unit and component: `unit`).
    dirs = {p.parent.name for p in (ROOT / "tests").glob("*/test_*.py")}
    assert dirs - {"unit", "component"} <= tiers, dirs - tiers
    assert all((ROOT / "tests" / t).is_dir() for t in tiers), tiers
    targets = make_targets()
    for script in runs(ci):
        used = re.findall(r"\bmake ([a-z][a-z0-9-]*)", script)
        assert used, f"a CI step that calls no make target: {script!r}"
        assert set(used) <= targets, set(used) - targets


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflows_cache_their_toolchains(name: str) -> None:
    """Jobs with the toolchains get them from the composite action, its caches included."""
    action = yaml.safe_load(
        (ROOT / ".github" / "actions" / "toolchains" / "action.yml").read_text()
    )
    uses = {s.get("uses", "").split("@")[0]: s.get("with", {}) for s in action["runs"]["steps"]}
    assert uses["actions/setup-python"]["cache"] == "pip"
    assert "cache-dependency-path" in uses["actions/setup-go"]
    assert uses["actions/setup-node"]["cache"] == "npm"
    assert uses["actions/setup-java"]["cache"] == "maven"
    assert "actions/cache" in uses
    wf = workflow(name)
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    assert any(s.get("uses") == "./.github/actions/toolchains" for s in steps)


def test_release_builds_tags_and_pushes_on_version_tags() -> None:
    release = workflow("release.yml")
    on = release[True]  # YAML 1.1 reads the key `on` as true
    assert on["push"]["tags"] == ["v*.*.*"]
    scripts = "\n".join(runs(release))
    assert "make images" in scripts and "make chart" in scripts
    assert 'docker push "$REGISTRY/meshkit/$image:$VERSION"' in scripts
    text = (WORKFLOWS / "release.yml").read_text()
    assert "secrets.REGISTRY_PASSWORD" in text and "docker/login-action" in text
