"""Child processes of a benchmark: started so that none outlives the run, and measured
from /proc (CPU seconds, peak RSS) so that the figures are the server's own."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

from devstack.process import ReadyLineProcess

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
class Child(ReadyLineProcess):
    """A child process that prints a ``<MARKER> {json}`` line when ready (devstack's kind
    of process, measured here)."""

    ready_timeout: ClassVar[float] = 60.0

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mib(self) -> float:
        return peak_rss_mib(self.pid)


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
    output goes to ``log`` (stderr directly)."""
    return start_python(name, args, marker=marker, log=log, env=env).wait_ready(timeout)


def start_python(
    name: str,
    args: list[str],
    *,
    marker: str,
    log: IO[str],
    env: dict[str, str] | None = None,
) -> Child:
    """Start ``python <args>`` (see spawn_python) without waiting for it."""
    child = Child(
        name,
        argv=[sys.executable, *args],
        env=python_env(env),
        cwd=ROOT,
        marker=marker,
        log=log,
        merge_stderr=False,
    )
    return child.launch()


def wait_ready(child: Child, timeout: float | None = None) -> Child:
    """Wait for ``child``'s ready line; kill it if it ends or times out first."""
    return child.wait_ready(timeout)
