"""Named fault scenarios (``infra/faults/<name>.toml``, one fault each) applied to a
running stack through Consul's KV: ``mesh/faults/<service>`` holds the service's active
faults, which its instances watch and inject (``meshkit.rpc.faults``). Writing takes the
management token (devstack's); the services' tokens may only read ``mesh/faults/``.

``make faults`` lists the scenarios and which are active, ``make fault SCENARIO=<name>``
applies one (beside the others active), ``make fault-clear`` clears them all, against the
``make run`` stack (Consul on 127.0.0.1:8500, or ``$CONSUL_HTTP_ADDR``; the management
token in ``.state/consul/management.token``)::

    python -m devstack.faults [list]
    python -m devstack.faults apply payment-delay-2s [--callers order]
    python -m devstack.faults remove payment-delay-2s
    python -m devstack.faults clear [--service payment]

Tests use the same through ``apply_scenario``, ``clear_faults`` and ``active_faults``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from devstack.tools import ROOT
from meshkit.rpc.faults import (
    KV_PREFIX,
    Fault,
    decode,
    encode,
    faults_by_service,
    kv_key,
    parse_scenario,
)
from meshkit.rpc.faults import scenarios as read_scenarios

SCENARIOS_DIR = ROOT / "infra" / "faults"
DEFAULT_CONSUL = "127.0.0.1:8500"  # make run's Consul (fixed ports)


def scenarios(directory: Path = SCENARIOS_DIR) -> dict[str, Fault]:
    """Every named scenario of ``directory``, by name (its file's stem)."""
    return read_scenarios(directory)


def load_scenario(name: str, directory: Path = SCENARIOS_DIR) -> Fault:
    """The scenario ``name`` (``infra/faults/<name>.toml``); LookupError if there is none."""
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.toml")))
        raise LookupError(f"no fault scenario {name!r} in {directory} (there are: {known})")
    return parse_scenario(path.read_text(), name)


class _Consul:
    """The few KV calls this needs, with a token (urllib: no event loop, no dependency)."""

    def __init__(self, http_addr: str, token: str) -> None:
        self.url = "http://" + http_addr.removeprefix("http://").rstrip("/")
        self.token = token

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(
            self.url + path, data=body, method=method, headers={"X-Consul-Token": self.token}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return 404, b""
            detail = exc.read().decode(errors="replace").strip()
            raise RuntimeError(f"Consul {method} {path}: {exc.code} {detail}") from exc

    def read(self, service: str) -> tuple[int, list[Fault]]:
        """The service's active faults and the key's ModifyIndex (0: no key)."""
        status, body = self.call("GET", f"/v1/kv/{kv_key(service)}")
        if status == 404:
            return 0, []
        item = json.loads(body)[0]
        return int(item["ModifyIndex"]), decode(base64.b64decode(item["Value"] or ""))

    def write(self, service: str, faults: list[Fault], cas: int) -> bool:
        """Replace the service's faults if the key is still at ``cas`` (check-and-set)."""
        path = f"/v1/kv/{kv_key(service)}?cas={cas}"
        if faults:
            _, body = self.call("PUT", path, encode(faults))
        elif cas:
            _, body = self.call("DELETE", path)
        else:
            return True  # no key, and none wanted
        return body.strip() == b"true"


def _update(
    consul_http_addr: str,
    management_token: str,
    service: str,
    change: Callable[[list[Fault]], list[Fault]],
) -> list[Fault]:
    consul = _Consul(consul_http_addr, management_token)
    for _ in range(20):  # check-and-set: another writer in between means read again
        index, active = consul.read(service)
        faults = change(active)
        if consul.write(service, faults, index):
            return faults
    raise RuntimeError(f"{kv_key(service)} kept changing; the faults were not written")


def apply_scenario(consul_http_addr: str, management_token: str, scenario: str | Fault) -> Fault:
    """Activate ``scenario`` (a name of ``infra/faults/`` or a Fault) on its service,
    beside its other active faults (one of the same name is replaced). The instances
    inject it as soon as their watch sees it (within a moment)."""
    fault = load_scenario(scenario) if isinstance(scenario, str) else scenario
    _update(
        consul_http_addr,
        management_token,
        fault.service,
        lambda active: [f for f in active if f.name != fault.name] + [fault],
    )
    return fault


def remove_scenario(consul_http_addr: str, management_token: str, name: str) -> bool:
    """Deactivate the scenario ``name`` wherever it is active; whether it was."""
    found = False
    for service, faults in active_faults(consul_http_addr, management_token).items():
        if any(f.name == name for f in faults):
            found = True
            _update(
                consul_http_addr,
                management_token,
                service,
                lambda active: [f for f in active if f.name != name],
            )
    return found


def clear_faults(consul_http_addr: str, management_token: str, service: str | None = None) -> None:
    """Deactivate every fault (of ``service`` only, if given)."""
    consul = _Consul(consul_http_addr, management_token)
    if service is not None:
        consul.call("DELETE", f"/v1/kv/{kv_key(service)}")
    else:
        consul.call("DELETE", f"/v1/kv/{KV_PREFIX}?recurse=true")


def active_faults(consul_http_addr: str, management_token: str) -> dict[str, list[Fault]]:
    """The active faults, by service."""
    consul = _Consul(consul_http_addr, management_token)
    status, body = consul.call("GET", f"/v1/kv/{KV_PREFIX}?recurse=true")
    return {} if status == 404 else faults_by_service(body)


def _print_list(consul_http_addr: str, token: str) -> None:
    named = scenarios()
    try:
        active = {
            f.name: f for faults in active_faults(consul_http_addr, token).values() for f in faults
        }
        note = ""
    except (OSError, RuntimeError) as exc:
        active, note = {}, f"(which are active is unknown: no Consul at {consul_http_addr}: {exc})"
    print(f"{'scenario':<24}{'fault':<56}active")
    for name, fault in named.items():
        state = ""
        if name in active:
            state = "ACTIVE" if active.pop(name) == fault else "ACTIVE (changed)"
        print(f"{name:<24}{fault.summary():<56}{state}".rstrip())
    for name, fault in active.items():  # applied by a test or by hand, not from a file
        print(f"{name:<24}{fault.summary():<56}ACTIVE")
    if note:
        print(note)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m devstack.faults", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--consul",
        default=os.environ.get("CONSUL_HTTP_ADDR", DEFAULT_CONSUL),
        help=f"Consul's HTTP address (default $CONSUL_HTTP_ADDR or {DEFAULT_CONSUL})",
    )
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state")
    p.add_argument("--token-file", type=Path, help="default: <state-dir>/consul/management.token")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("list", help="the scenarios of infra/faults/ and which are active")
    apply = sub.add_parser("apply", help="activate a scenario")
    apply.add_argument("scenario")
    apply.add_argument(
        "--callers", default="", help="only for these callers (service names, comma-separated)"
    )
    remove = sub.add_parser("remove", help="deactivate one scenario")
    remove.add_argument("scenario")
    clear = sub.add_parser("clear", help="deactivate every fault")
    clear.add_argument("--service", default=None, help="only this service's")
    a = p.parse_args(argv)

    token_file: Path = a.token_file or a.state_dir / "consul" / "management.token"
    if not token_file.is_file():
        print(f"no management token in {token_file}: is `make run` up?", file=sys.stderr)
        return 1
    token = token_file.read_text().strip()
    consul = a.consul.removeprefix("http://")
    try:
        if a.command in (None, "list"):
            _print_list(consul, token)
        elif a.command == "apply":
            fault = load_scenario(a.scenario)
            if a.callers:
                callers = tuple(c.strip() for c in a.callers.split(",") if c.strip())
                fault = replace(fault, callers=callers)
            apply_scenario(consul, token, fault)
            print(f"applied {fault.name}: {fault.summary()}")
        elif a.command == "remove":
            found = remove_scenario(consul, token, a.scenario)
            print(f"removed {a.scenario}" if found else f"{a.scenario} was not active")
        else:
            clear_faults(consul, token, a.service)
            print(f"cleared the faults{' of ' + a.service if a.service else ''}")
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"no change: {exc} (is `make run` up, Consul at {consul}?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
