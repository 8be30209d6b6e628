"""Restarts the processes of a stack that die, with exponential backoff, and gives up on a
crash loop, as systemd does (``Restart=on-failure``, ``StartLimitBurst``,
``StartLimitIntervalSec``).

A process that exits is started again after a delay that doubles with each exit in the
window (``RestartPolicy``: 0.5 s, 1 s, 2 s, ... up to 30 s); once ``burst`` restarts
happened within ``interval`` seconds, the next exit is a crash loop: it is reported and
the process is left down, while the others keep running. An exit older than the window
no longer counts, so a process that crashes now and then starts from 0.5 s again.

A restart starts a new process of the same kind, name, arguments and environment
(``respawn``): a service with a fixed port (``make run``'s) gets the same port, one
started with ``--port 0`` a new free one, and a new instance id in Consul.

Usage (``make run`` polls it from its main loop; tests may run it in a thread)::

    sup = Supervisor.for_stack(stack, RestartPolicy(burst=5, interval=60.0))
    sup.watch(stack.services["order"])      # or any ChildProcess that is a dataclass
    while not stop.wait(0.1):
        sup.poll()                          # exits seen, delays waited, restarts done
    sup.current("order")                    # the live instance (a new object after a restart)
    sup.given_up                            # names left down after a crash loop

    with Supervisor(policy).running() as sup:   # the same, polled by a thread of its own
        sup.watch(proc)

``Supervisor.for_stack(stack, policy)`` registers each new instance with the stack (it
is stopped when the stack closes, and ``stack.services[name]`` is the latest). Each call
of ``poll`` takes no longer than a probe: a restart is launched, and its readiness
checked by later polls (``ready_timeout`` of its kind, then it counts as an exit). The
clock, and where the lines go (``log``, ``print`` by default), can be given (tests).

A thread that starts children must live as long as they do (``PR_SET_PDEATHSIG``, see
``devstack.process``): restarts are launched from one thread that lives as long as this
process (``spawn``), never from ``running()``'s, so a restarted process outlives the
``with`` block that restarted it and is stopped with its stack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, TypeVar

from devstack.process import ChildProcess

if TYPE_CHECKING:
    from devstack.stack import Stack

T = TypeVar("T")


@dataclass(frozen=True)
class RestartPolicy:
    """Delays ``initial * factor**(n-1)`` (at most ``max_delay``) for the n-th exit within
    ``interval`` seconds; more than ``burst`` restarts in that window: given up."""

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    burst: int = 5  # StartLimitBurst
    interval: float = 60.0  # StartLimitIntervalSec

    def __post_init__(self) -> None:
        if self.initial < 0 or self.factor < 1 or self.max_delay < 0:
            raise ValueError("initial and max_delay must be >= 0, factor >= 1")
        if self.burst < 0 or self.interval <= 0:
            raise ValueError("burst must be >= 0 and interval > 0")

    def delay(self, attempt: int) -> float:
        """The wait before restart number ``attempt`` (1-based) of a streak."""
        return min(self.max_delay, self.initial * self.factor ** max(0, attempt - 1))


class Backoff:
    """The decisions for one process: ``exited()`` returns the delay before the next start
    and its attempt number, or None when the start limit is hit (a crash loop)."""

    def __init__(self, policy: RestartPolicy, clock: Callable[[], float] = time.monotonic):
        self.policy = policy
        self.clock = clock
        self.exits: deque[float] = deque()  # the exits within the window

    def exited(self) -> tuple[float, int] | None:
        now = self.clock()
        while self.exits and now - self.exits[0] >= self.policy.interval:
            self.exits.popleft()
        self.exits.append(now)
        attempt = len(self.exits)
        if attempt > self.policy.burst:
            return None
        return self.policy.delay(attempt), attempt


class _Spawner:
    """One thread for the life of this process that launches the restarted children (their
    ``PR_SET_PDEATHSIG`` fires when the thread that started them ends)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def __call__(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="spawner", daemon=True)
                self._thread.start()
        done: Future[T] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _run(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as err:
                done.set_exception(err)


spawn = _Spawner()


def respawn(proc: ChildProcess) -> ChildProcess:
    """A new, not yet started process like ``proc``: same kind, name, arguments,
    environment and log."""
    if not dataclasses.is_dataclass(proc):
        raise TypeError(f"cannot respawn {proc!r}: not a dataclass")
    fresh = dataclasses.replace(proc, process=None)  # type: ignore[type-var]
    if hasattr(fresh, "info"):
        fresh.info = {}  # what its own ready line says
    return fresh


@dataclass
class Watched:
    """The state of one supervised name."""

    proc: ChildProcess
    backoff: Backoff
    state: str = "running"  # running | starting | waiting | given-up
    since: float = 0.0  # when the current state began
    restart_at: float = 0.0  # waiting: when to start again
    attempt: int = 0
    restarts: int = 0
    exit_codes: list[int | None] = field(default_factory=list)


class Supervisor:
    """Watches processes by name and restarts those that exit (see the module's doc).

    ``watch(proc)``: supervise it (a process still starting is checked for readiness);
    ``poll()``: one round; ``current(name)``, ``state(name)``, ``restarts(name)``,
    ``given_up``: what happened; ``unwatch(name)``: stop supervising (a test that kills
    on purpose and wants it to stay down); ``running()``: a thread polling every
    ``interval`` seconds, for the length of a ``with`` block.
    """

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        *,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
        on_restart: Callable[[ChildProcess], None] | None = None,
        respawn: Callable[[ChildProcess], ChildProcess] = respawn,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.log = log
        self.clock = clock
        self.on_restart = on_restart
        self.respawn = respawn
        self._watched: dict[str, Watched] = {}
        self._lock = threading.RLock()

    @classmethod
    def for_stack(cls, stack: Stack, policy: RestartPolicy | None = None, **kw: Any) -> Self:
        """A supervisor whose restarted services are the stack's (stopped at its close)."""

        def adopt(proc: ChildProcess) -> None:
            launcher = stack.launcher
            if proc not in launcher.started:
                launcher.started.append(proc)  # type: ignore[arg-type]
            name = getattr(proc, "name", "")
            if name in stack.services:
                stack.services[name] = proc  # type: ignore[assignment]

        return cls(policy, on_restart=adopt, **kw)

    # --- what is watched ----------------------------------------------------------------

    def watch(self, proc: ChildProcess) -> ChildProcess:
        """Supervise ``proc`` (started or launched) under its name; returns it."""
        now = self.clock()
        with self._lock:
            state = "running" if _ready(proc) else "starting"
            self._watched[proc.name] = Watched(
                proc, Backoff(self.policy, self.clock), state=state, since=now
            )
        return proc

    def unwatch(self, name: str) -> ChildProcess | None:
        with self._lock:
            w = self._watched.pop(name, None)
        return w.proc if w else None

    def current(self, name: str) -> ChildProcess:
        with self._lock:
            return self._watched[name].proc

    def state(self, name: str) -> str:
        with self._lock:
            return self._watched[name].state

    def restarts(self, name: str) -> int:
        with self._lock:
            return self._watched[name].restarts

    @property
    def names(self) -> list[str]:
        with self._lock:
            return list(self._watched)

    @property
    def given_up(self) -> list[str]:
        with self._lock:
            return [n for n, w in self._watched.items() if w.state == "given-up"]

    # --- one round ----------------------------------------------------------------------

    def poll(self) -> None:
        """Notice exits, start again those whose delay is over, check those starting."""
        with self._lock:
            for name, w in list(self._watched.items()):
                self._step(name, w)

    def _step(self, name: str, w: Watched) -> None:
        now = self.clock()
        if w.state == "running":
            if not w.proc.running:
                self._exited(name, w, _code(w.proc))
        elif w.state == "waiting":
            if now >= w.restart_at:
                self._restart(name, w)
        elif w.state == "starting":
            if _ready(w.proc):
                w.state, w.since = "running", now
                if w.restarts:
                    self.log(f"{name} is up again ({_where(w.proc)}, restart {w.restarts})")
            elif not w.proc.running:
                self._exited(name, w, _code(w.proc), before_ready=True)
            elif now - w.since > type(w.proc).ready_timeout:
                w.proc.kill()
                self._exited(name, w, "a timeout", before_ready=True)

    def _exited(self, name: str, w: Watched, code: object, before_ready: bool = False) -> None:
        with contextlib.suppress(Exception):
            w.proc.stop(0)  # reap it; cleanup of its kind
        w.exit_codes.append(code if isinstance(code, int) else None)
        how = f"exited with {code}" + (" before it was ready" if before_ready else "")
        decision = w.backoff.exited()
        if decision is None:
            w.state, w.since = "given-up", self.clock()
            self.log(
                f"{name} {how}; {len(w.backoff.exits)} exits within"
                f" {self.policy.interval:g} s: a crash loop, not restarting it again"
                " (the others keep running)"
            )
            return
        delay, w.attempt = decision
        w.state, w.since, w.restart_at = "waiting", self.clock(), self.clock() + delay
        self.log(f"{name} {how}; restarting in {delay:.1f} s (attempt {w.attempt})")

    def _restart(self, name: str, w: Watched) -> None:
        fresh = self.respawn(w.proc)
        w.restarts += 1
        w.proc, w.state, w.since = fresh, "starting", self.clock()
        try:
            spawn(fresh.launch)
        except Exception as err:  # e.g. the executable is gone: an exit like any other
            self._exited(name, w, f"a failed start ({err})", before_ready=True)
            return
        if self.on_restart is not None:
            self.on_restart(fresh)

    # --- in a thread --------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self, interval: float = 0.1) -> Iterator[Self]:
        """Poll from a thread of its own until the block ends."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.poll()
                except Exception as err:  # keep supervising; say what went wrong
                    self.log(f"supervisor: {err!r}")

        thread = threading.Thread(target=loop, name="supervisor", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(5.0)


def _ready(proc: ChildProcess) -> bool:
    if not proc.running:
        return False
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return proc.is_ready()
    return False


def _code(proc: ChildProcess) -> int | None:
    return proc.process.returncode if proc.process is not None else None


def _where(proc: ChildProcess) -> str:
    info = getattr(proc, "info", None) or {}
    pid = proc.process.pid if proc.process is not None else "?"
    if "port" in info:
        return f"pid {pid}, {info.get('address', '127.0.0.1')}:{info['port']}"
    return f"pid {pid}"
