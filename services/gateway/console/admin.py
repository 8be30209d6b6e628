"""The console's admin actions, with a Consul token of their own (never the gateway's):

- an intention flipped: the source's entry in the destination's ``service-intentions``
  set to ``deny``, or restored to what infra/consul/intentions/ says (``allow`` when the
  file has no entry for it); every instance of the destination watches its intentions
  and decides in process, so the next call is decided by the new entry;
- a fault scenario of infra/faults/ activated or cleared in ``mesh/faults/<service>``
  (meshkit.rpc.faults), with check-and-set like ``make fault``.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import httpx

from meshkit.rpc.faults import (
    KV_PREFIX,
    Fault,
    decode,
    encode,
    faults_by_service,
    kv_key,
    scenarios,
)

log = logging.getLogger("gateway.console.admin")


class AdminError(Exception):
    """An admin action that could not be done (a message for the page)."""


class Admin:
    def __init__(
        self,
        consul_addr: str,
        token: str,
        http: httpx.AsyncClient,
        intentions_dir: Path,
        faults_dir: Path,
    ) -> None:
        self.consul = "http://" + consul_addr.removeprefix("http://").rstrip("/")
        self.token = token
        self.http = http
        self.intentions_dir = intentions_dir
        self.faults_dir = faults_dir

    async def _call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        resp = await self.http.request(
            method,
            self.consul + path,
            content=body,
            headers={"X-Consul-Token": self.token},
            timeout=5.0,
        )
        if resp.status_code >= 400 and resp.status_code != 404:
            raise AdminError(f"Consul {method} {path}: {resp.status_code} {resp.text.strip()}")
        return resp.status_code, resp.content

    # --- intentions -------------------------------------------------------------------

    def _baseline(self, destination: str, source: str) -> dict[str, Any]:
        path = self.intentions_dir / f"{destination}.json"
        if path.is_file():
            for s in json.loads(path.read_text()).get("Sources", []):
                if s.get("Name") == source:
                    return dict(s)
        return {"Name": source, "Action": "allow"}

    async def set_intention(self, source: str, destination: str, action: str) -> dict[str, Any]:
        """``deny``: the source is denied; ``allow``: its entry as the repository has it."""
        if action not in ("allow", "deny"):
            raise AdminError("action must be allow or deny")
        for _ in range(10):
            status, body = await self._call("GET", f"/v1/config/service-intentions/{destination}")
            if status == 404:
                raise AdminError(f"{destination} has no intentions")
            entry = json.loads(body)
            new = (
                self._baseline(destination, source)
                if action == "allow"
                else {
                    "Name": source,
                    "Action": "deny",
                    "Description": "denied from the console",
                }
            )
            sources = [s for s in entry.get("Sources", []) if s.get("Name") != source]
            # Before the wildcard: Consul orders by precedence anyway, keep it readable.
            sources.insert(0, new)
            put = {
                "Kind": "service-intentions",
                "Name": destination,
                "Sources": sources,
            }
            _, ok = await self._call(
                "PUT", f"/v1/config?cas={entry['ModifyIndex']}", json.dumps(put).encode()
            )
            if ok.strip() == b"true":
                log.warning("console: intention %s -> %s set to %s", source, destination, action)
                return {"source": source, "destination": destination, "action": action}
        raise AdminError(f"{destination}'s intentions kept changing; nothing was written")

    # --- faults -----------------------------------------------------------------------

    async def active_faults(self) -> dict[str, list[Fault]]:
        status, body = await self._call("GET", f"/v1/kv/{KV_PREFIX}?recurse=true")
        return {} if status == 404 else faults_by_service(body)

    async def set_fault(self, name: str, active: bool) -> dict[str, Any]:
        known = scenarios(self.faults_dir)
        if name not in known:
            raise AdminError(f"no fault scenario {name!r} (there are: {', '.join(known)})")
        fault = known[name]
        key = kv_key(fault.service)
        for _ in range(10):
            status, body = await self._call("GET", f"/v1/kv/{key}")
            index, current = 0, []
            if status != 404:
                item = json.loads(body)[0]
                index = int(item["ModifyIndex"])
                current = decode(base64.b64decode(item["Value"] or ""))
            faults = [f for f in current if f.name != name] + ([fault] if active else [])
            if faults:
                _, ok = await self._call("PUT", f"/v1/kv/{key}?cas={index}", encode(faults))
            elif index:
                _, ok = await self._call("DELETE", f"/v1/kv/{key}?cas={index}")
            else:
                ok = b"true"
            if ok.strip() == b"true":
                log.warning("console: fault %s %s", name, "applied" if active else "cleared")
                return {"name": name, "active": active}
        raise AdminError(f"{key} kept changing; nothing was written")
