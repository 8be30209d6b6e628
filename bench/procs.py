"""Child processes of a benchmark: started so that none outlives the run, and measured
from /proc (CPU seconds, peak RSS) so that the figures are the server's own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devstack.services import _die_with_parent

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a whole process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmHWM for pid {pid}")


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class Child:
    """A child process that printed a ``<MARKER> {json}`` line when ready."""

    name: str
    process: subprocess.Popen[str]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return f"{self.info.get('address', '127.0.0.1')}:{self.info['port']}"

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (a mesh server deregisters from Consul), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, no deregistration."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def spawn_python(
    name: str,
    args: list[str],
    *,
    marker: str,
    log: IO[str],
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Child:
    """``python <args>`` in its own session, killed if this process dies; waits for
    ``marker`` at the start of a stdout line and parses the JSON after it. The rest of its
    output (and all of stderr) goes to ``log``."""
    return wait_ready(start_python(name, args, log=log, env=env), marker, log, timeout)


def start_python(
    name: str, args: list[str], *, log: IO[str], env: dict[str, str] | None = None
) -> Child:
    """Start ``python <args>`` (see spawn_python) without waiting for it."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        env=python_env(env),
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    return Child(name, proc)


def wait_ready(child: Child, marker: str, log: IO[str], timeout: float = 60.0) -> Child:
    """Wait for ``child``'s ready line; kill it if it ends or times out first."""
    proc = child.process
    assert proc.stdout is not None
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    seen: list[str] = []
    try:
        for line in proc.stdout:
            if line.startswith(marker):
                child.info = json.loads(line[len(marker) :])
                _drain(proc.stdout, log, child.name)
                return child
            seen.append(line)
    finally:
        watchdog.cancel()
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{child.name} did not become ready; it printed:\n" + "".join(seen[-30:]))


def _drain(stream: IO[str], log: IO[str], name: str) -> None:
    """Copy a child's remaining stdout to the log from a daemon thread (a full pipe would
    block the child)."""

    def pump() -> None:
        for line in stream:
            log.write(f"[{name}] {line}")
        log.flush()

    threading.Thread(target=pump, daemon=True).start()
