"""`make bench-quick` runs every benchmark section with tiny counts and produces every figure.

A smoke test of the harness, never of speed: it asserts that the run finished, that the
table and the JSON hold every section and a value for every figure, and that each figure
with a target got a verdict, whichever it is. It leaves no process behind.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.integration

SECTIONS = ("overhead", "chain", "orders", "failover", "scaling")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.mark.timeout(300)
def test_bench_quick_runs_every_section_and_writes_every_figure(tmp_path: Path) -> None:
    out = subprocess.run(
        ["make", "-s", "bench-quick", f"BENCH_ARGS=--out={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    for n in range(1, 6):
        assert f"\n[{n}. " in out.stdout, f"section {n} missing from the table:\n{out.stdout}"
    assert "targets: " in out.stdout

    results = list(tmp_path.glob("*.json"))
    assert len(results) == 1, results
    data = json.loads(results[0].read_text())
    assert data["profile"] == "quick"
    assert data["errors"] == {}
    assert set(SECTIONS) <= set(data["sections"])
    figures = data["figures"]
    assert {f["section"][:2] for f in figures} == {f"{n}." for n in range(1, 6)}
    missing = [f"{f['section']}: {f['name']} {f['column']}" for f in figures if f["value"] is None]
    assert not missing, f"figures without a value: {missing}"
    with_target = [f for f in figures if f["target"] is not None]
    assert len(with_target) >= 10
    assert all(f["verdict"] in ("PASS", "MISS") for f in with_target)
    for f in with_target:  # printed beside its target
        assert f["name"] in out.stdout

    # Every process of the run was stopped (the state directory is in their command lines).
    assert not processes_mentioning(data["machine"]["state_dir"])
