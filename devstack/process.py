"""Child processes of a stack, all started, watched and stopped one way.

``ChildProcess`` is the base of every process devstack starts (Consul, NATS, Hydra, the
services, the benchmark's servers): each runs in a session of its own (a Ctrl-C to the
terminal reaches the parent only, which then stops its children in order), dies with its
parent (``PR_SET_PDEATHSIG``), writes its output to a log, is ready when its probe says
so, and stops with its own graceful signal, then SIGKILL if it lingers.

``ReadyLineProcess`` is the kind that says it is ready by printing ``<MARKER> {json}`` on
its stdout (``MESH_READY`` of the services, ``BENCH_READY`` of the bench servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Self

_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None


def dying_with_parent(cmd: Sequence[str], *setpriv_args: str) -> list[str]:
    """``cmd`` behind util-linux's ``setpriv --pdeathsig TERM`` (and ``setpriv_args``): it
    gets SIGTERM when the parent dies, so no child outlives a run. Linux sends it when the
    *thread* that started the child ends: start children from a thread that lives as long
    as they should (never from a pool). setpriv sets it, then execs ``cmd`` (same pid).

    Not a ``preexec_fn``: Python code run between fork and exec, in a process whose gRPC
    threads are busy, crashed a child now and then before exec (gRPC's fork handlers:
    SIGABRT or SIGSEGV in ev_epoll1_linux.cc); without one, subprocess uses vfork, which
    runs no fork handler."""
    if _SETPRIV is None:
        return list(cmd)
    return [_SETPRIV, "--pdeathsig", "TERM", *setpriv_args, "--", *cmd]


@dataclass(kw_only=True)
class ChildProcess:
    """One child process; a subclass says its ``command()`` and when it ``is_ready()``."""

    name: ClassVar[str] = "process"
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 10.0
    ready_timeout: ClassVar[float] = 30.0
    poll_interval: ClassVar[float] = 0.05

    log_path: Path | None = None
    process: subprocess.Popen[Any] | None = field(default=None, repr=False)

    # --- what a kind of process says -------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The child's whole environment; None inherits this process's."""
        return None

    def working_dir(self) -> Path | None:
        return None

    def is_ready(self) -> bool:
        """Probe once; an OSError or ValueError (refused, bad JSON, ...) means not yet."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """After the process has ended (stopped, killed, or failed to start)."""

    # --- one way for all of them -----------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float | None = None) -> Self:
        """Launch and wait until ready; killed (and the error raised) if it is not."""
        self.launch()
        return self.wait_ready(timeout)

    def restart(self) -> Self:
        """Stop, then start again (on the same ports and data, where the server keeps them)."""
        self.stop()
        return self.start()

    def launch(self) -> Self:
        """Start the process without waiting for it (start several, then wait for each)."""
        if self.running:
            raise RuntimeError(f"{self.name} is running already (pid {self.pid})")
        self._cmd = self.command()
        self.process = self._popen(self._cmd)
        return self

    def _popen(self, cmd: list[str]) -> subprocess.Popen[Any]:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            return subprocess.Popen(
                self._argv(cmd), stdout=log, stderr=subprocess.STDOUT, **self._popen_options()
            )
        finally:
            if not isinstance(log, int):
                log.close()  # the child has its own descriptor

    def _popen_options(self) -> dict[str, Any]:
        return {
            "stdin": subprocess.DEVNULL,
            "env": self.environment(),
            "cwd": self.working_dir(),
            "start_new_session": True,
        }

    def _argv(self, cmd: list[str]) -> list[str]:
        """What is executed for ``cmd``: it, dying with its parent."""
        return dying_with_parent(cmd)

    def wait_ready(self, timeout: float | None = None) -> Self:
        """Poll ``is_ready`` until it holds; if the process exits first or the time is up,
        kill it and raise, with the end of what it wrote."""
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        proc = self.process
        assert proc is not None, f"{self.name} was never launched"
        try:
            while True:
                with contextlib.suppress(OSError, ValueError):
                    if self.is_ready():
                        return self
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {proc.returncode} before it was ready:"
                        f" {shlex.join(self._cmd)}{self.output_tail()}"
                    )
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{self.name} not ready after {timeout} s{self.output_tail()}"
                    )
                self._pause()
        except BaseException:
            self.kill()
            raise

    def _pause(self) -> None:
        time.sleep(self.poll_interval)

    def output_tail(self, lines: int = 30) -> str:
        """The last lines of the log, for an error message."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with contextlib.suppress(OSError):
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
            return f"; the end of {self.log_path}:\n" + "\n".join(tail)
        return ""

    def stop(self, timeout: float | None = None) -> int | None:
        """The graceful signal (the process group), SIGKILL if it does not exit in time;
        returns the exit code (None if it was never started)."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal(self.stop_signal)
            try:
                proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                proc.wait()
        self.cleanup()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash (a service does not deregister)."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            self._signal(signal.SIGKILL)
            proc.wait()
        self.cleanup()

    def _signal(self, sig: int) -> None:
        """To the child's process group (its own session): it and whatever it started."""
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class ReadyLineProcess(ChildProcess):
    """A process that prints ``<marker> {json}`` on stdout when ready; ``info`` is that
    JSON. Its output goes line by line to ``log``, a text sink several processes share,
    each line prefixed with who wrote it (with ``merge_stderr=False`` its stderr goes to
    ``log`` directly, for processes whose stderr is busy)."""

    name: str  # type: ignore[misc]  # an instance's, not the class's
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    cwd: Path | None = None
    marker: str = "MESH_READY "
    log: IO[str] | None = field(default=None, repr=False)
    merge_stderr: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    def command(self) -> list[str]:
        return list(self.argv)

    def environment(self) -> dict[str, str] | None:
        return self.env

    def working_dir(self) -> Path | None:
        return self.cwd

    @property
    def port(self) -> int:
        return int(self.info["port"])

    @property
    def address(self) -> str:
        return f"{self.info.get('address', '127.0.0.1')}:{self.port}"

    def log_prefix(self) -> str:
        """Who wrote a line once the process is ready."""
        return self.name

    def _popen(self, cmd: list[str]) -> subprocess.Popen[Any]:
        self._ready = threading.Event()
        self._seen: deque[str] = deque(maxlen=40)
        stderr: Any = subprocess.STDOUT if self.merge_stderr or self.log is None else self.log
        proc = subprocess.Popen(
            self._argv(cmd),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            **self._popen_options(),
        )
        self._pump = threading.Thread(
            target=self._read, args=(proc.stdout,), name=f"{self.name}-output", daemon=True
        )
        self._pump.start()
        return proc

    def _read(self, stream: IO[str]) -> None:
        """Read the child's stdout to its end (a full pipe would block the child)."""
        for line in stream:
            prefix = self.name
            if not self._ready.is_set():
                if line.startswith(self.marker):
                    with contextlib.suppress(ValueError):
                        self.info = json.loads(line[len(self.marker) :])
                        self._ready.set()
                        continue
                self._seen.append(line)
            else:
                prefix = self.log_prefix()
            if self.log is not None:
                with contextlib.suppress(ValueError):  # the sink was closed: the run is over
                    self.log.write(f"[{prefix}] {line}")
                    self.log.flush()

    def is_ready(self) -> bool:
        return self._ready.is_set()

    def _pause(self) -> None:
        self._ready.wait(self.poll_interval)

    def output_tail(self, lines: int = 30) -> str:
        self._pump.join(2.0)  # what it printed before it exited
        return "; it printed:\n" + "".join(list(self._seen)[-lines:])


def run_in_thread(coro: Coroutine[Any, Any, Any], name: str, what: str | None = None) -> None:
    """Run ``coro`` to its end on a loop of its own thread ``name`` (the caller may be
    running a loop: an async test); its failure raised as RuntimeError(``what``)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name=name)
    worker.start()
    worker.join()
    if failure:
        raise RuntimeError(what or f"{name} failed") from failure[0]
