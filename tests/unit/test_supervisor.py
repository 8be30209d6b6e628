"""The supervisor's decisions (backoff, the start limit, restarts) with a fake clock and
fake processes: no child is started."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from devstack.process import ChildProcess
from devstack.supervisor import Backoff, RestartPolicy, Supervisor, respawn


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePopen:
    pid = 4242

    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


@dataclass(kw_only=True)
class Fake(ChildProcess):
    """A process that is ready at once (unless ``ready=False``) and dies when told."""

    name: str  # type: ignore[misc]
    argv: tuple[str, ...] = ()
    ready: bool = True
    launches: ClassVar[list[Fake]] = []

    def command(self) -> list[str]:
        return list(self.argv)

    def launch(self) -> Fake:
        self.process = FakePopen()  # type: ignore[assignment]
        Fake.launches.append(self)
        return self

    def is_ready(self) -> bool:
        return self.ready

    def die(self, code: int = -9) -> None:
        assert self.process is not None
        self.process.returncode = code

    def _signal(self, sig: int) -> None:
        self.die(-sig)


@pytest.fixture
def clock() -> Clock:
    Fake.launches.clear()
    return Clock()


def supervisor(clock: Clock, lines: list[str], **policy: Any) -> Supervisor:
    return Supervisor(RestartPolicy(**policy), log=lines.append, clock=clock)


def test_delays_double_up_to_the_cap() -> None:
    p = RestartPolicy(initial=0.5, factor=2.0, max_delay=30.0)
    assert [p.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_backoff_gives_up_after_burst_restarts_within_the_window(clock: Clock) -> None:
    b = Backoff(RestartPolicy(burst=3, interval=60.0), clock)
    assert b.exited() == (0.5, 1)
    clock.now += 1
    assert b.exited() == (1.0, 2)
    clock.now += 2
    assert b.exited() == (2.0, 3)
    clock.now += 4
    assert b.exited() is None  # a 4th exit within 60 s


def test_exits_older_than_the_window_no_longer_count(clock: Clock) -> None:
    b = Backoff(RestartPolicy(burst=2, interval=10.0), clock)
    assert b.exited() == (0.5, 1)
    clock.now += 5
    assert b.exited() == (1.0, 2)
    clock.now += 6  # the first exit is 11 s old now
    assert b.exited() == (1.0, 2)
    clock.now += 20
    assert b.exited() == (0.5, 1)  # a quiet spell: back to the first delay


def test_a_dead_process_is_restarted_after_its_delay_with_the_same_arguments(
    clock: Clock,
) -> None:
    lines: list[str] = []
    sup = supervisor(clock, lines)
    first = sup.watch(Fake(name="order", argv=("--port", "50051")).launch())
    sup.poll()
    assert sup.state("order") == "running"

    first.die(-9)  # type: ignore[attr-defined]
    sup.poll()
    assert lines == ["order exited with -9; restarting in 0.5 s (attempt 1)"]
    assert sup.state("order") == "waiting"
    clock.now += 0.4
    sup.poll()
    assert len(Fake.launches) == 1  # not yet
    clock.now += 0.1
    sup.poll()
    second = sup.current("order")
    assert second is not first and Fake.launches[-1] is second
    assert second.command() == ["--port", "50051"]  # a fixed port stays fixed
    assert sup.state("order") == "starting"
    sup.poll()
    assert sup.state("order") == "running" and sup.restarts("order") == 1
    assert lines[-1].startswith("order is up again (pid 4242")

    clock.now += 3
    second.die(-9)  # type: ignore[attr-defined]
    sup.poll()
    assert lines[-1] == "order exited with -9; restarting in 1.0 s (attempt 2)"


def test_a_crash_loop_is_given_up_on_and_the_others_keep_running(clock: Clock) -> None:
    lines: list[str] = []
    sup = supervisor(clock, lines, burst=2, interval=60.0)
    sup.watch(Fake(name="payment", argv=("--bogus",), ready=False).launch())
    steady = sup.watch(Fake(name="inventory").launch())
    for _ in range(10):  # each start exits at once, before it is ready
        sup.current("payment").die(2)  # type: ignore[attr-defined]
        sup.poll()
        clock.now += 5
        sup.poll()
    assert sup.given_up == ["payment"]
    assert sup.restarts("payment") == 2
    assert len([p for p in Fake.launches if p.name == "payment"]) == 3
    assert "a crash loop, not restarting it again" in lines[-1]
    assert lines[0] == "payment exited with 2 before it was ready; restarting in 0.5 s (attempt 1)"
    assert sup.state("inventory") == "running" and steady.running
    assert sup.current("inventory") is steady


def test_a_restart_that_never_gets_ready_counts_as_an_exit(clock: Clock) -> None:
    lines: list[str] = []
    sup = supervisor(clock, lines)
    proc = sup.watch(Fake(name="shipping", ready=False).launch())
    assert sup.state("shipping") == "starting"
    clock.now += Fake.ready_timeout + 1
    sup.poll()
    assert not proc.running
    assert lines == [
        "shipping exited with a timeout before it was ready; restarting in 0.5 s (attempt 1)"
    ]


def test_restarted_processes_are_handed_to_on_restart_and_unwatch_stops_it(
    clock: Clock,
) -> None:
    adopted: list[ChildProcess] = []
    sup = Supervisor(RestartPolicy(initial=0), log=lambda _: None, clock=clock)
    sup.on_restart = adopted.append
    proc = sup.watch(Fake(name="order").launch())
    proc.die()  # type: ignore[attr-defined]
    sup.poll()
    sup.poll()
    assert adopted == [sup.current("order")]
    assert sup.unwatch("order") is adopted[0]
    adopted[0].die()  # type: ignore[attr-defined]
    sup.poll()
    assert len(adopted) == 1 and sup.names == []


def test_respawn_copies_everything_but_the_process_and_its_ready_info() -> None:
    from devstack.services import ServiceProcess

    old = ServiceProcess("order", argv=["python", "-m", "services.order"], env={"A": "1"})
    old.info = {"port": 50051}
    new = respawn(old)
    assert isinstance(new, ServiceProcess) and new is not old
    assert (new.name, new.argv, new.env, new.info, new.process) == (
        "order",
        ["python", "-m", "services.order"],
        {"A": "1"},
        {},
        None,
    )


def test_the_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RestartPolicy(factor=0.5)
    with pytest.raises(ValueError):
        RestartPolicy(interval=0)
