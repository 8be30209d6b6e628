"""Fault injection: delays and aborts a service's server interceptor adds to its calls.

A fault names the service it targets, a method (or ``*``: every method of the service's
own, never health or reflection), its kind (``delay``: the call waits, within its
deadline, then runs; ``abort``: the call fails with a status), the share of calls it hits
(``percentage``) and, optionally, the callers it applies to (SPIFFE service names). The
named scenarios of ``infra/faults/`` are such faults, one per file (``devstack.faults``).

The active faults of a service are in Consul's KV at ``mesh/faults/<service>`` (a JSON
``{"faults": [...]}``), which every instance watches with a blocking query
(:class:`FaultWatch`); devstack writes them with the management token, each service's
token may only read ``mesh/faults/``. A change re-wraps the interceptor's handlers
(``MeshServerInterceptor.set_faults``): a method with a fault gets its injector bound in
its wrap, and with none active nothing on the request path looks at faults at all.
Every injected fault counts in ``mesh_faults_injected_total{method,kind}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import consul.aio
import grpc

from meshkit.config import parse_duration
from meshkit.consul import WAIT, Watch
from meshkit.rpc.interceptors import Rejected
from meshkit.security.identity import NoIdentity, identity_of_peer
from meshkit.telemetry.metrics import Metrics

log = logging.getLogger("mesh.faults")

KV_PREFIX = "mesh/faults/"
DELAY, ABORT = "delay", "abort"
ALL_METHODS = "*"
_FIELDS = {
    "name",
    "description",
    "service",
    "method",
    "kind",
    "delay",
    "status",
    "percentage",
    "callers",
}


def kv_key(service: str) -> str:
    """The KV key of ``service``'s active faults."""
    return f"{KV_PREFIX}{service}"


@dataclass(frozen=True)
class Fault:
    """One fault (a scenario): what it targets, what it does, how often, for whom."""

    name: str
    service: str
    kind: str
    method: str = ALL_METHODS
    delay: float = 0.0  # seconds, for a delay
    status: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE  # for an abort
    percentage: float = 100.0
    callers: tuple[str, ...] = ()  # SPIFFE service names; empty: every caller
    description: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str = "") -> Fault:
        """A fault from a scenario file's or the KV's fields; ValueError if it is not one."""
        unknown = set(data) - _FIELDS
        name = str(data.get("name") or name)
        if unknown:
            raise ValueError(f"fault {name!r}: unknown field(s) {', '.join(sorted(unknown))}")
        if not name:
            raise ValueError("a fault needs a name")
        service = str(data.get("service", ""))
        if not service:
            raise ValueError(f"fault {name!r}: no service")
        kind = str(data.get("kind", ""))
        if kind not in (DELAY, ABORT):
            raise ValueError(f"fault {name!r}: kind must be delay or abort, not {kind!r}")
        delay = 0.0
        status = grpc.StatusCode.UNAVAILABLE
        if kind == DELAY:
            raw = data.get("delay")
            if raw is None:
                raise ValueError(f'fault {name!r}: a delay needs delay (e.g. "2s")')
            delay = parse_duration(raw) if isinstance(raw, str) else float(raw)
            if delay <= 0:
                raise ValueError(f"fault {name!r}: the delay must be positive")
        else:
            code = str(data.get("status", "UNAVAILABLE")).upper()
            try:
                status = grpc.StatusCode[code]
            except KeyError:
                raise ValueError(f"fault {name!r}: no gRPC status {code!r}") from None
            if status is grpc.StatusCode.OK:
                raise ValueError(f"fault {name!r}: an abort's status cannot be OK")
        percentage = float(data.get("percentage", 100))
        if not 0 < percentage <= 100:
            raise ValueError(f"fault {name!r}: percentage must be in (0, 100]")
        callers = data.get("callers", ())
        if isinstance(callers, str) or not all(isinstance(c, str) for c in callers):
            raise ValueError(f"fault {name!r}: callers must be a list of service names")
        return cls(
            name=name,
            service=service,
            kind=kind,
            method=str(data.get("method") or ALL_METHODS),
            delay=delay,
            status=status,
            percentage=percentage,
            callers=tuple(callers),
            description=str(data.get("description", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what the KV holds)."""
        out: dict[str, Any] = {
            "name": self.name,
            "service": self.service,
            "method": self.method,
            "kind": self.kind,
        }
        if self.kind == DELAY:
            out["delay"] = f"{self.delay:g}s"
        else:
            out["status"] = self.status.name
        out["percentage"] = self.percentage
        if self.callers:
            out["callers"] = list(self.callers)
        if self.description:
            out["description"] = self.description
        return out

    def applies_to(self, method: str) -> bool:
        """Whether the fault targets ``method`` (``/pkg.Service/Method``): ``*``, the full
        name, or the method's own name."""
        m = self.method
        return m in (ALL_METHODS, method, method.rpartition("/")[2])

    def summary(self) -> str:
        what = f"delay {self.delay:g}s" if self.kind == DELAY else f"abort {self.status.name}"
        who = f" for {', '.join(self.callers)}" if self.callers else ""
        return f"{self.service} {self.method}: {what}, {self.percentage:g}%{who}"


def parse_scenario(text: str, name: str) -> Fault:
    """A scenario file's TOML (one fault) as a Fault named ``name`` unless it names itself."""
    return Fault.from_dict(tomllib.loads(text), name)


def encode(faults: Iterable[Fault]) -> bytes:
    """The KV value of a service's active faults."""
    return json.dumps({"faults": [f.to_dict() for f in faults]}, indent=1).encode()


def decode(value: bytes | str | None) -> list[Fault]:
    """The faults of a KV value (none for no value); ValueError if malformed."""
    if not value:
        return []
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    items = data.get("faults", []) if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError('expected {"faults": [...]}')
    return [Fault.from_dict(item) for item in items]


def scenarios(directory: Path) -> dict[str, Fault]:
    """Every named scenario of ``directory`` (``infra/faults/``), by name (its file's stem)."""
    return {p.stem: parse_scenario(p.read_text(), p.stem) for p in sorted(directory.glob("*.toml"))}


def faults_by_service(listing: bytes | str) -> dict[str, list[Fault]]:
    """The active faults, by service, of Consul's answer to a recursive read of
    ``KV_PREFIX`` (``GET /v1/kv/mesh/faults/?recurse=true``); services without any left out."""
    out: dict[str, list[Fault]] = {}
    for item in json.loads(listing):
        faults = decode(base64.b64decode(item["Value"] or ""))
        if faults:
            out[item["Key"].removeprefix(KV_PREFIX)] = faults
    return out


def caller_service(context: grpc.aio.ServicerContext) -> str:
    """The caller's service name from its certificate ("" when it has no identity)."""
    peer = context.peer_identities()
    if not peer:
        return ""
    try:
        return identity_of_peer(peer).service
    except NoIdentity:
        return ""


class MethodFaults:
    """The faults of one method, bound into its wrap: ``await inject(context)`` delays or
    raises ``Rejected`` (an abort) or returns (no fault hit this call)."""

    __slots__ = ("_counters", "_faults", "_rng")

    def __init__(self, faults: list[Fault], rng: random.Random, counters: dict[str, Any]) -> None:
        # Delays before aborts, as Envoy applies them: a delayed call may then fail.
        self._faults = sorted(faults, key=lambda f: f.kind != DELAY)
        self._rng = rng
        self._counters = counters

    async def __call__(self, context: grpc.aio.ServicerContext) -> None:
        caller: str | None = None
        for fault in self._faults:
            if fault.callers:
                if caller is None:
                    caller = caller_service(context)
                if caller not in fault.callers:
                    continue
            if self._rng.random() * 100.0 >= fault.percentage:
                continue
            self._counters[fault.kind].inc()
            if fault.kind == ABORT:
                raise Rejected(fault.status, f"fault injected: {fault.name}")
            remaining = context.time_remaining()
            if remaining is not None and remaining < fault.delay:
                # Within the call's deadline: wait what is left, then fail as it would.
                await asyncio.sleep(max(remaining, 0.0))
                raise Rejected(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"deadline exceeded during an injected delay ({fault.name})",
                )
            await asyncio.sleep(fault.delay)


class Faults:
    """The faults active on one instance (its service's), and the injector of a method."""

    def __init__(
        self,
        service: str,
        faults: Iterable[Fault] = (),
        *,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.faults = [f for f in faults if f.service == service]
        self.rng = rng or random.Random()
        self._counter = injected_counter(metrics or Metrics())

    def __bool__(self) -> bool:
        return bool(self.faults)

    def injector(self, method: str) -> MethodFaults | None:
        """What a call of ``method`` awaits, or None when no fault targets it."""
        mine = [f for f in self.faults if f.applies_to(method)]
        if not mine:
            return None
        counters = {kind: self._counter.labels(method, kind) for kind in (DELAY, ABORT)}
        return MethodFaults(mine, self.rng, counters)


def injected_counter(metrics: Metrics) -> Any:
    """``mesh_faults_injected_total{method,kind}`` in ``metrics``' registry (made once)."""
    counter = getattr(metrics, "faults_injected", None)
    if counter is None:
        counter = metrics.counter(
            "mesh_faults_injected",
            "Faults injected into this instance's calls (infra/faults/, Consul KV"
            " mesh/faults/<service>), by method and kind: delay or abort.",
            ("method", "kind"),
        )
        metrics.faults_injected = counter  # type: ignore[attr-defined]
    return counter


class FaultWatch:
    """Watches ``mesh/faults/<service>`` with a blocking query and hands the active faults
    (None when there are none) to ``apply``, e.g. ``MeshServerInterceptor.set_faults``.
    A malformed value is logged and leaves the faults as they were."""

    def __init__(
        self,
        consul_client: consul.aio.Consul,
        service: str,
        apply: Callable[[Faults | None], None],
        metrics: Metrics | None = None,
    ) -> None:
        self.service = service
        self.key = kv_key(service)
        self._consul = consul_client
        self._apply = apply
        self._metrics = metrics or Metrics()
        injected_counter(self._metrics)  # the series exist (at zero) before any fault
        self.watch: Watch[bytes | None] = Watch(f"faults:{service}", self._fetch, self._changed)
        self.active: list[Fault] = []

    async def _fetch(self, index: int) -> tuple[int, bytes | None]:
        idx, item = await self._consul.kv.get(self.key, index=index or None, wait=WAIT)
        return int(idx or 0), (item or {}).get("Value") if item else None

    def _changed(self, value: bytes | None) -> None:
        try:
            faults = decode(value)
        except ValueError as exc:
            log.error("%s: ignoring a malformed value: %s", self.key, exc)
            return
        faults = [f for f in faults if f.service == self.service]
        if faults:
            log.warning(
                "faults active on %s: %s",
                self.service,
                "; ".join(f"{f.name} ({f.summary()})" for f in faults),
            )
        elif self.active:
            log.warning("faults cleared on %s", self.service)
        self.active = faults
        self._apply(Faults(self.service, faults, metrics=self._metrics) if faults else None)

    def start(self) -> FaultWatch:
        self.watch.start()
        return self

    async def stop(self) -> None:
        await self.watch.stop()
