"""Who may call this service: Consul intentions, decided locally per caller identity.

Consul's ``/v1/agent/connect/authorize`` would be one HTTP call per decision, and on
1.22.7 it keeps answering DENY after a deny intention is lifted. So the runtime watches
``/v1/connect/intentions/match?by=destination&name=<svc>`` with blocking queries (Consul
returns the matching intentions sorted by precedence) and decides in process: the first
intention whose source matches the caller wins; none matching means deny (zero trust: a
caller needs an intention, ``default_allow`` is off unless a caller asks for it). A
service that no intention names as destination says so at start (``warn_if_unreachable``).
Decisions are cached per caller and dropped whenever the intentions change, so the
request path never talks to Consul and a changed intention applies within a second.

When Connect is off, :class:`StaticIntentions` applies the same rule to the very files
``make run`` loads into Consul (infra/consul/intentions/<destination>.json).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import consul.aio

from meshkit.consul import Watch, blocking_get
from meshkit.security.identity import SpiffeId

log = logging.getLogger("mesh.authorization")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


class Authorizer(Protocol):
    """Decides whether a caller may call a method. One that also has an int ``generation``,
    changed whenever a decision may change, lets the server keep a decision per peer and
    method until then (``meshkit.rpc.interceptors``); one without is asked on every call."""

    def decide(self, caller: SpiffeId, method: str) -> Decision: ...


def _matches(pattern: str, value: str) -> bool:
    return pattern in ("*", value)


def _permission_matches(permission: dict[str, Any], method: str) -> bool:
    """L7 permissions of gRPC services match on the HTTP/2 path, ``/pkg.Service/Method``."""
    http = permission.get("HTTP") or {}
    if exact := http.get("PathExact"):
        return bool(method == exact)
    if prefix := http.get("PathPrefix"):
        return method.startswith(prefix)
    if regex := http.get("PathRegex"):
        return re.fullmatch(regex, method) is not None
    return True


def decide_by_intentions(
    intentions: list[dict[str, Any]], caller: SpiffeId, method: str, default_allow: bool
) -> Decision:
    """Consul's rule: the highest-precedence intention whose source matches decides."""
    for it in intentions:
        if not _matches(it.get("SourceName", ""), caller.service):
            continue
        if not _matches(it.get("SourceNS") or "default", caller.namespace):
            continue
        name = f"{it.get('SourceName')} -> {it.get('DestinationName')}"
        if action := it.get("Action"):
            return Decision(action == "allow", f"intention {name} says {action}")
        # Layer-7 intention: its permissions, in order; no match means deny.
        for perm in it.get("Permissions") or []:
            if _permission_matches(perm, method):
                action = perm.get("Action", "deny")
                return Decision(action == "allow", f"intention {name} says {action} for {method}")
        return Decision(False, f"intention {name} has no permission for {method}")
    how = "allow" if default_allow else "deny"
    return Decision(default_allow, f"no intention matches; default is {how}")


def warn_if_unreachable(authorizer: Authorizer, destination: str) -> None:
    """A WARNING when no intention names ``destination``: every call to it is denied."""
    if getattr(authorizer, "has_entry", True):
        return
    log.warning(
        "no intentions for %s: every call to it is denied but health and reflection "
        "(default deny); allow its callers with a service-intentions entry, "
        "infra/consul/intentions/%s.json (applied to Consul by devstack, or "
        "`consul config write`)",
        destination,
        destination,
    )


class StaticIntentions:
    """Intentions read once from ``<dir>/<destination>.json`` (a service-intentions entry)."""

    generation = 0  # read once: its decisions never change

    def __init__(self, directory: Path, destination: str, default_allow: bool = False) -> None:
        self.destination = destination
        self.default_allow = default_allow
        path = directory / f"{destination}.json"
        self.has_entry = path.exists()
        entry = json.loads(path.read_text()) if path.exists() else {"Sources": []}
        sources = entry.get("Sources") or []
        # Consul's precedence within one destination: exact source names before "*".
        ordered = sorted(sources, key=lambda src: src.get("Name") == "*")
        self.intentions = [
            {**src, "SourceName": src.get("Name"), "DestinationName": destination}
            for src in ordered
        ]

    def decide(self, caller: SpiffeId, method: str) -> Decision:
        return decide_by_intentions(self.intentions, caller, method, self.default_allow)


class Intentions:
    """Intentions for one destination, watched from Consul, decided in process."""

    def __init__(
        self, consul_client: consul.aio.Consul, destination: str, default_allow: bool = False
    ) -> None:
        self.destination = destination
        self.default_allow = default_allow
        self._cache: dict[tuple[str, str, str], Decision] = {}
        self._intentions: list[dict[str, Any]] = []
        self.generation = 0  # one more at each change of the intentions
        params = [("by", "destination"), ("name", destination)]

        async def fetch(index: int) -> tuple[int, list[dict[str, Any]]]:
            i, body = await blocking_get(
                consul_client, "/v1/connect/intentions/match", index, params
            )
            return i, list((body or {}).get(destination) or [])

        self._watch = Watch(f"intentions:{destination}", fetch, self._on_change)

    async def start(self) -> None:
        self._watch.start()
        self._intentions = await self._watch.ready()

    async def stop(self) -> None:
        await self._watch.stop()

    @property
    def has_entry(self) -> bool:
        """Whether any intention names this destination (or ``*``) now."""
        return bool(self._intentions)

    def _on_change(self, intentions: list[dict[str, Any]]) -> None:
        self._intentions = intentions
        self._cache = {}
        self.generation += 1
        log.info("intentions for %s: %d", self.destination, len(intentions))

    def decide(self, caller: SpiffeId, method: str) -> Decision:
        key = (caller.namespace, caller.service, method)
        decision = self._cache.get(key)
        if decision is None:
            decision = decide_by_intentions(self._intentions, caller, method, self.default_allow)
            self._cache[key] = decision
        return decision
