"""Service instances as child processes: ``python -m services.<name>`` on free ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar

from devstack.consul import ConsulAgent
from devstack.nats import NatsServer
from devstack.process import ReadyLineProcess

READY = "MESH_READY "
NO_NATS = "nats://127.0.0.1:1"  # no broker: a port nothing listens on (fine for a client)

# What devstack's processes run with besides the caller's environment (overridable).
DEV_ENV = {
    "MESH_TRACE_SAMPLE": os.environ.get("MESH_TRACE_SAMPLE", "1"),
    "MESH_ACCESS_LOG": os.environ.get("MESH_ACCESS_LOG", "1"),
}


@dataclass
class ServiceProcess(ReadyLineProcess):
    """One running instance; ``info`` is what it printed on its MESH_READY line. ``stop``
    is graceful (SIGTERM: it deregisters and drains), ``kill`` a crash."""

    stop_timeout: ClassVar[float] = 15.0

    def log_prefix(self) -> str:
        return str(self.info.get("instance_id", self.name))


def service_process(
    name: str,
    *,
    consul_http_addr: str,
    nats_url: str,
    state_dir: Path,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    log: IO[str] | None = None,
    module: str | None = None,
    nats_creds: Path | None = None,
) -> ServiceProcess:
    """An instance of ``services.<name>`` (or ``module``, which serves ``name`` its own way,
    as a test's fault wrapper does), not started yet; ``nats_creds``: its broker
    credential (``NatsServer.creds(name)``)."""
    return ServiceProcess(
        name,
        argv=[
            sys.executable,
            "-m",
            module or f"services.{name}",
            "--consul",
            consul_http_addr,
            "--nats",
            nats_url,
            "--state-dir",
            str(state_dir),
            *(["--nats-creds", str(nats_creds)] if nats_creds is not None else []),
            *(args or []),
        ],
        # Development profile: every trace recorded, so every order can be followed.
        env={**os.environ, "PYTHONUNBUFFERED": "1", **DEV_ENV, **(env or {})},
        marker=READY,
        log=log,
    )


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
    nats_creds: Path | None = None,
) -> ServiceProcess:
    """Start ``services.<name>`` (or ``module``) and wait for its MESH_READY line."""
    proc = service_process(
        name,
        consul_http_addr=consul_http_addr,
        nats_url=nats_url,
        state_dir=state_dir,
        args=args,
        env=env,
        log=log,
        module=module,
        nats_creds=nats_creds,
    )
    return proc.start(timeout)


class Launcher:
    """Starts service processes against one Consul and one NATS (their output in
    ``services.log``, by default in the state directory), each with its own NATS
    credential; ``stop_all`` stops them all."""

    def __init__(
        self,
        consul: ConsulAgent,
        nats: NatsServer | None,
        state_dir: Path,
        log: IO[str] | None = None,
    ) -> None:
        self.consul = consul
        self.nats = nats
        self.state_dir = state_dir
        self.started: list[ServiceProcess] = []
        # What each backend of the stack (broker, registry, database) gives an instance of
        # a service in its environment: name -> MESH_* variables; applied in order.
        self.env_providers: list[Callable[[str], dict[str, str]]] = []
        self._own_log = log is None
        self.log = open(state_dir / "services.log", "a") if log is None else log  # noqa: SIM115

    @property
    def nats_url(self) -> str:
        return self.nats.url if self.nats is not None else NO_NATS

    def launch(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        module: str | None = None,
    ) -> ServiceProcess:
        """Start an instance without waiting for it (``proc.wait_ready()`` does)."""
        proc = self.process(name, *args, env=env, module=module)
        self.started.append(proc)
        return proc.launch()

    def process(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        module: str | None = None,
    ) -> ServiceProcess:
        """An instance of ``name`` as this launcher runs it: neither started nor tracked."""
        return service_process(
            name,
            consul_http_addr=self.consul.http_addr,
            nats_url=self.nats_url,
            state_dir=self.state_dir,
            args=list(args),
            # its own Consul token and the signer, its backends' settings (an env of the
            # caller's may override them)
            env={**self.consul.identity_env(name), **self.backend_env(name), **(env or {})},
            log=self.log,
            module=module,
            nats_creds=self.nats.creds(name) if self.nats is not None else None,
        )

    def backend_env(self, name: str) -> dict[str, str]:
        """The environment the stack's backends give an instance of ``name``."""
        env: dict[str, str] = {}
        for provider in self.env_providers:
            env.update(provider(name))
        return env

    def start(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        module: str | None = None,
    ) -> ServiceProcess:
        """Start an instance and wait for its MESH_READY line."""
        return self.launch(name, *args, env=env, module=module).wait_ready()

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            proc.stop()
        if self._own_log:
            self.log.close()
