"""``make run-cluster`` (``python -m devstack.cluster``): up with its summary, and a
Ctrl-C stops every process it started (none is left behind)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

UP = "Ctrl-C stops everything."


def processes_mentioning(*needles: str) -> list[str]:
    """The live processes whose command line or environment holds one of ``needles``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
            if b"Z" in (proc / "stat").read_bytes().split(b") ", 1)[1][:1]:
                continue  # a zombie: already ended
        except OSError:
            continue
        if any(n.encode() in cmdline or n.encode() in environ for n in needles):
            shown = cmdline.replace(b"\0", b" ")[:120].decode(errors="replace")
            found.append(f"{proc.name}: {shown}")
    return found


def test_run_cluster_prints_its_summary_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.cluster", "--state-dir", str(state)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            lines.append(line.rstrip())
            if UP in line or time.monotonic() > deadline:
                break
        out = "\n".join(lines)
        assert UP in out, out
        assert re.search(r"Raft leader consul-server-\d; voters consul-server-1, consul-server-2,"
                         r" consul-server-3", out), out  # fmt: skip
        assert re.search(r"JetStream meta leader nats-\d", out), out
        assert re.search(r"SHOP_EVENTS R3: leader nats-\d, replicas nats-\d \((current|behind)\),"
                         r" nats-\d \((current|behind)\)", out), out  # fmt: skip
        for service in ("inventory", "payment", "shipping", "order", "gateway"):
            assert len(re.findall(rf"^    {service} ", out, re.M)) == 2, (service, out)
        issuer = re.search(r"hydra\s+(http://127\.0\.0\.1:\d+)", out)
        assert issuer, out
        needles = (str(state), f"URLS_SELF_ISSUER={issuer.group(1)}")
        # 7 Consul agents, 3 NATS servers, 10 instances, the signer, Hydra (and the main)
        assert len(processes_mentioning(*needles)) >= 7 + 3 + 10 + 2
        proc.send_signal(signal.SIGINT)  # Ctrl-C (the terminal sends it to the group)
        rest, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, rest
        assert "stopped." in rest, rest
        assert processes_mentioning(*needles) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
