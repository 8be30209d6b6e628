"""Load generators: ghz (Go, pinned, from scripts/install-go-tools.sh) and the Python client
(bench/client.py), each run as a process of its own; with the server's CPU seconds read
from /proc just before and just after the measured calls (never the warm-up)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.client import RESULT, WARM
from bench.procs import ROOT, cpu_seconds, python_env
from bench.servers import SKU
from bench.stack import GET_STOCK
from devstack.process import dying_with_parent
from devstack.tools import go_tool
from meshkit.config import DEFAULT_MESH_FILE, MeshPolicy
from meshkit.security.certificates import authority


def call_timeout(method: str = "/" + GET_STOCK) -> float:
    """Each benchmark call's deadline: 5 s, or less if the mesh's policy allows less."""
    policy = MeshPolicy.load(DEFAULT_MESH_FILE).deadlines.for_method(method)
    return min(5.0, policy.max)


@dataclass(frozen=True)
class Target:
    """Where a load generator sends its calls, and how it connects."""

    kind: str  # insecure | tls | mesh
    address: str = ""  # host:port (ghz; the Python client unless kind is mesh)
    certs: Path | None = None  # the client's leaf (tls and mesh for ghz)
    service: str = "inventory"


def cpu_of(pids: Sequence[int]) -> float:
    """CPU seconds so far of the processes ``pids``, together."""
    return sum(cpu_seconds(p) for p in pids)


def ghz_command(
    target: Target,
    protoset: Path,
    call: str,
    *,
    concurrency: int,
    total: int,
    rps: float = 0.0,
    connections: int = 1,
    cpus: int = 1,
    timeout: float | None = None,
    data: dict[str, Any] | None = None,
    data_file: Path | None = None,
) -> list[str]:
    """ghz's command line for one run (its report: JSON on stdout). ``data``: the request
    as JSON, where ghz's template functions apply (``{{newUUID}}``); by default GetStock's,
    with templates off. ``data_file``: a JSON array of requests instead, sent in turn
    (call n sends element n modulo their number), templates off."""
    source = (
        ["--data-file", str(data_file)]
        if data_file is not None
        else ["--data", json.dumps(data if data is not None else {"sku": SKU})]
    )
    cmd = [
        go_tool("ghz"),
        "--protoset", str(protoset),
        "--call", call,
        *source,
        "--concurrency", str(concurrency),
        "--total", str(total),
        "--connections", str(connections),
        "--cpus", str(cpus),
        "--timeout", f"{timeout or call_timeout():g}s",
        "--format", "json",
    ]  # fmt: skip
    if data is None:
        cmd += ["--disable-template-functions", "--disable-template-data"]
    if rps:
        cmd += ["--rps", str(round(rps))]
    if target.kind == "insecure":
        cmd += ["--insecure"]
    else:
        assert target.certs is not None
        cmd += [
            "--cacert", str(target.certs / "ca.pem"),
            "--cert", str(target.certs / "cert.pem"),
            "--key", str(target.certs / "key.pem"),
            "--cname", authority(target.service),
        ]  # fmt: skip
    cmd.append(target.address)
    return cmd


def ghz(
    target: Target, protoset: Path, call: str, *, max_duration: float = 120.0, **kwargs: Any
) -> dict[str, Any]:
    """One ghz run (``ghz_command``'s arguments); QPS and latency percentiles (ms) of the
    calls that succeeded.

    ``max_duration`` bounds the run from outside: ghz v0.120.0 ignores ``--total`` when
    given its own ``--max-duration``."""
    cmd = ghz_command(target, protoset, call, **kwargs)
    out = subprocess.run(
        dying_with_parent(cmd), capture_output=True, text=True, timeout=max_duration, check=False
    )
    return ghz_report(out.returncode, out.stdout, out.stderr)


def ghz_report(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The summary of a finished ghz run from its output."""
    if returncode != 0 and not stdout.strip():
        raise RuntimeError(f"ghz failed ({returncode}): {stderr.strip()[-500:]}")
    return ghz_summary(json.loads(stdout))


def ghz_summary(report: dict[str, Any]) -> dict[str, Any]:
    codes = report.get("statusCodeDistribution") or {}
    ok = int(codes.get("OK", 0))
    count = int(report.get("count", 0))
    dist = {
        int(d["percentage"]): d["latency"] / 1e6 for d in report.get("latencyDistribution") or []
    }
    elapsed = report.get("total", 0) / 1e9
    return {
        "count": count,
        "ok": ok,
        "errors": count - ok,
        "error_codes": {k: v for k, v in codes.items() if k != "OK"},
        "elapsed_s": elapsed,
        "qps": ok / elapsed if elapsed else 0.0,
        "p50_ms": dist.get(50, math.nan),
        "p90_ms": dist.get(90, math.nan),
        "p99_ms": dist.get(99, math.nan),
        "mean_ms": report.get("average", 0) / 1e6,
    }


def ghz_measured(
    target: Target,
    protoset: Path,
    call: str,
    server_pids: Sequence[int],
    *,
    warmup: int,
    **kwargs: Any,
) -> dict[str, Any]:
    """A warm-up run, then the measured run with the servers' CPU seconds around it."""
    if warmup:
        ghz(target, protoset, call, **{**kwargs, "total": warmup, "rps": 0.0})
    before = cpu_of(server_pids)
    result = ghz(target, protoset, call, **kwargs)
    cpu = cpu_of(server_pids) - before
    return with_cpu(result, cpu)


def with_cpu(result: dict[str, Any], cpu: float) -> dict[str, Any]:
    ok = result["ok"]
    return {
        **result,
        "server_cpu_s": cpu,
        "cpu_s_per_1000": cpu / ok * 1000.0 if ok else math.nan,
        "cpu_us_per_call": cpu / ok * 1e6 if ok else math.nan,
    }


def python_client(
    scenario: str,
    args: list[str],
    *,
    log: IO[str],
    server_pids: Sequence[int] = (),
    on_go: Callable[[], None] | None = None,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``python -m bench.client <scenario> <args>``. With ``server_pids`` or ``on_go``, the
    handshake: after the client's warm-up the servers' CPU seconds are read (and again
    after its measured run), ``on_go`` is called, and the measured run starts."""
    handshake = ["--handshake"] if server_pids or on_go else []
    proc = subprocess.Popen(
        dying_with_parent([sys.executable, "-m", "bench.client", scenario, *args, *handshake]),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**python_env(), **(env or {})},
        start_new_session=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    watchdog = threading.Timer(timeout, proc.kill)  # a client that hangs is ended
    watchdog.start()
    before = 0.0
    try:
        for line in proc.stdout:
            if line.startswith(WARM):
                before = cpu_of(server_pids)
                proc.stdin.write("go\n")
                proc.stdin.flush()
                if on_go is not None:
                    on_go()
            elif line.startswith(RESULT):
                result: dict[str, Any] = json.loads(line[len(RESULT) :])
                if server_pids:
                    result = with_cpu(result, cpu_of(server_pids) - before)
                proc.wait(timeout)
                return result
            else:
                log.write(f"[client] {line}")
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    raise RuntimeError(f"bench.client {scenario} gave no result (exit {proc.returncode})")


def client_args(target: Target, stack_consul: str, state: Path) -> list[str]:
    """How the Python client reaches ``target``."""
    timeout = ["--timeout", f"{call_timeout():g}"]
    if target.kind == "mesh":
        return [
            *timeout,
            "--kind", "mesh",
            "--consul", stack_consul,
            "--state-dir", str(state),
            "--service", target.service,
        ]  # fmt: skip
    args = [*timeout, "--kind", target.kind, "--address", target.address]
    args += ["--service", target.service]
    if target.kind == "tls":
        assert target.certs is not None
        args += ["--certs", str(target.certs)]
    return args
