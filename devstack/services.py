"""Service instances as child processes: ``python -m services.<name>`` on free ports."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

READY = "MESH_READY "
_PR_SET_PDEATHSIG = 1

# What devstack's processes run with besides the caller's environment (overridable).
DEV_ENV = {
    "MESH_TRACE_SAMPLE": os.environ.get("MESH_TRACE_SAMPLE", "1"),
    "MESH_ACCESS_LOG": os.environ.get("MESH_ACCESS_LOG", "1"),
}


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the launcher dies, so no instance outlives a test run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ServiceProcess:
    """One running instance; ``info`` is what it printed on its MESH_READY line."""

    name: str
    process: subprocess.Popen[str]
    info: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def address(self) -> str:
        return f"{self.info['address']}:{self.port}"

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (graceful: deregister, drain), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, no deregistration."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _pump(stream: IO[str], sink: IO[str] | None, prefix: str) -> None:
    for line in stream:
        if sink is not None:
            sink.write(prefix + line)
            sink.flush()


def start_service(
    name: str,
    *,
    consul_http_addr: str,
    nats_url: str,
    state_dir: Path,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    log: IO[str] | None = None,
    timeout: float = 30.0,
    module: str | None = None,
) -> ServiceProcess:
    """Start ``services.<name>`` (or ``module``, which serves ``name`` its own way, as a
    test's fault wrapper does) and wait for its MESH_READY line."""
    cmd = [
        sys.executable,
        "-m",
        module or f"services.{name}",
        "--consul",
        consul_http_addr,
        "--nats",
        nats_url,
        "--state-dir",
        str(state_dir),
        *(args or []),
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Development profile: every trace recorded, so every order can be followed.
        env={**os.environ, "PYTHONUNBUFFERED": "1", **DEV_ENV, **(env or {})},
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(READY):
            info = json.loads(line[len(READY) :])
            threading.Thread(
                target=_pump, args=(proc.stdout, log, f"[{info['instance_id']}] "), daemon=True
            ).start()
            return ServiceProcess(name, proc, info)
        seen.append(line)
        if log is not None:
            log.write(f"[{name}] {line}")
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{name} did not become ready; it printed:\n" + "".join(seen[-40:]))
