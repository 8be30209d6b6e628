"""The gateway walkthrough of docs/gateway.md, executed: token → place order → watch → read back.

`devstack.run` (what `make run` runs) starts on free ports here, Hydra and the gateway
included; the page's `http://127.0.0.1:8080` is mapped to the gateway it started, and
`make -s token` to what that target runs (`python -m devstack.edge`) on this run's state.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.test_gateway import sse_events

pytestmark = pytest.mark.integration

README_GATEWAY = "http://127.0.0.1:8080"


def readme_walkthrough() -> list[str]:
    """The shell lines of docs/gateway.md's curl block, continuation lines joined."""
    text = (ROOT / "docs" / "gateway.md").read_text()
    section = text.split("## Try it with curl", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [line.strip() for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("make-run-gateway")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.run", "--state-dir", str(state), "--free-ports"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    gateway, output = "", []
    deadline = time.monotonic() + 90
    for line in proc.stdout:
        output.append(line)
        if m := re.match(r"\s+gateway\s+(http://\S+)\s", line):
            gateway = m.group(1)
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    assert gateway, "".join(output)
    yield gateway, state
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert rest.rstrip().endswith("stopped.")


def test_the_readme_curl_walkthrough_works(make_run: tuple[str, Path]) -> None:
    gateway, state = make_run
    lines = readme_walkthrough()
    assert lines[0] == "TOKEN=$(make -s token)"
    token = subprocess.run(
        [sys.executable, "-m", "devstack.edge", "--state-dir", str(state)],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    calls = [line for line in lines[1:] if line.startswith("curl ")]
    assert len(calls) == 3, lines
    order_id = ""
    for line in calls:
        line = line.replace("$TOKEN", token).replace(README_GATEWAY, gateway)
        line = line.replace("<orderId from above>", order_id)
        args = shlex.split(line)
        out = subprocess.run(
            [*args, "--max-time", "30", "--fail-with-body"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert out.returncode == 0, f"{line}: {out.stdout} {out.stderr}"
        if "-X POST" in line:
            order = json.loads(out.stdout)["order"]
            assert order["status"] == "ORDER_STATUS_PENDING", order
            order_id = order["orderId"]
        elif "text/event-stream" in line:
            events = sse_events(out.stdout)
            assert events[-1][0] == "end", events
            last = [data for kind, data in events if kind == "message"][-1]
            assert last["order"]["status"] == "ORDER_STATUS_CONFIRMED", events
        else:
            order = json.loads(out.stdout)["order"]
            assert order["orderId"] == order_id
            assert order["status"] == "ORDER_STATUS_CONFIRMED", order
