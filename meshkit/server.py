"""Serving one instance of a service on the mesh: ``run_service(name, setup)``.

Start-up: the mesh (certificates from the mesh CA in Consul's trust domain, authorization
by Consul intentions), the service's own ``setup`` (database, servicers, stubs of the
services it calls), the mTLS gRPC server with health and reflection, a plaintext
loopback health port for Consul's checker, the Prometheus metrics port (also loopback),
then registration in its registry (``meshkit.discovery``: Consul by default, with the
metrics port in the service meta for Prometheus' ``consul_sd_configs``; Eureka; DNS: the
platform's) and the ``MESH_READY`` line (``meshkit.lifecycle``).

Shutdown on SIGTERM/SIGINT: health NOT_SERVING, deregistration (clients' watches drop the
instance within a second), then the server stops accepting and gives calls in flight
``shutdown_grace`` seconds to finish; everything opened is closed in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from opentelemetry import trace

from meshkit.config import MeshConfig
from meshkit.discovery import Registration
from meshkit.events.brokers import connect_bus
from meshkit.lifecycle import announce_ready, stop_event
from meshkit.mesh import BusFactory, Mesh, open_mesh
from meshkit.rpc.descriptors import add_servicer
from meshkit.rpc.faults import FaultWatch
from meshkit.rpc.interceptors import MeshServerInterceptor, WrappingServer
from meshkit.security.authorization import warn_if_unreachable
from meshkit.telemetry import logs, tracing
from meshkit.telemetry.metrics import METRICS_PATH

log = logging.getLogger("mesh")

Setup = Callable[[Mesh], Awaitable[None]]


@dataclass
class _Servers:
    """The instance's gRPC server (mTLS) and its plaintext loopback health server."""

    server: grpc.aio.Server
    health_server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    health_port: int
    names: list[str]


# gRPC sets SO_REUSEPORT on a server's socket unless told not to: a second process binding
# a port already held (an explicit port, or a port freed and picked again) then shares it
# silently, and the kernel splits connections between the two (grpc/grpc#10755). One
# process serves each instance here: a taken port is an error ("address in use").
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)


def _build_servers(mesh: Mesh, config: MeshConfig, interceptor: MeshServerInterceptor) -> _Servers:
    # Every method behind the interceptor's wrap, registered so (not through grpc's
    # interceptor chain, which costs two coroutines per call).
    server = grpc.aio.server(options=SERVER_OPTIONS)
    wrapping = WrappingServer(server, interceptor)
    health_servicer = health.aio.HealthServicer()
    names = [d.full_name for d, _ in mesh.services]
    for descriptor, servicer in mesh.services:
        add_servicer(wrapping, descriptor, servicer)  # type: ignore[arg-type]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, wrapping)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    # reflection.enable_server_reflection would pick the sync servicer for a non-aio server.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer([*names, health_name, reflection.SERVICE_NAME]),
        wrapping,
    )
    address = f"{config.host}:{config.port}"
    if mesh.certificates is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, mesh.certificates.server_credentials())
    # Consul's checker presents no client certificate: health alone, plaintext, loopback
    # (or ``health_host``: in a pod, its IP, for the kubelet's gRPC probes).
    health_server = grpc.aio.server(options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
    health_port = health_server.add_insecure_port(f"{config.health_host}:{config.health_port}")
    return _Servers(server, health_server, health_servicer, port, health_port, names)


async def serve(
    config: MeshConfig,
    setup: Setup,
    stop: asyncio.Event | None = None,
    *,
    global_tracer: bool = False,
    bus_factory: BusFactory = connect_bus,
) -> None:
    """Run one instance until ``stop`` is set, or until SIGTERM/SIGINT when ``stop`` is None.

    ``global_tracer``: the instance is the process (``run_service``), so its tracer provider
    becomes OpenTelemetry's global one, for code that asks ``opentelemetry.trace``.
    """
    log_context = logs.setup_logging(config.name, config.instance_id, config.log_json)
    stop = stop_event(stop)
    async with AsyncExitStack() as stack:
        mesh, authorizer = await open_mesh(config, bus_factory=bus_factory)
        stack.push_async_callback(mesh.close)
        if authorizer is not None:
            warn_if_unreachable(authorizer, config.name)
        if global_tracer:
            trace.set_tracer_provider(mesh.tracer)
        await setup(mesh)

        certificates = mesh.certificates
        interceptor = MeshServerInterceptor(
            config.policy,
            authorizer,
            (lambda: certificates.trust_domain) if certificates else (lambda: config.trust_domain),
            mesh.metrics,
            logs.AccessLog(log_context, config.log_json, every_call=config.access_log),
            tracing.ServerSpans(mesh.tracer, mesh.tracing.root_ratio),
        )
        # Faults to inject (Consul KV mesh/faults/<name>), watched; none: nothing per call.
        faults = FaultWatch(mesh.consul, config.name, interceptor.set_faults, mesh.metrics)
        mesh.on_close(faults.start().stop)
        servers = _build_servers(mesh, config, interceptor)
        # The ports are bound: the instance has its id from here on.
        config = config.with_instance(servers.port, servers.health_port)
        mesh.config = config
        interceptor.instance_id = config.instance_id
        log_context.instance = config.instance_id
        mesh.tracing.set_instance(config.instance_id)
        mesh.metrics.info.labels(config.name, config.instance_id, config.version).set(1)
        metrics_port = (
            await mesh.metrics.serve("127.0.0.1", config.metrics_port)
            if config.metrics_port >= 0
            else None
        )
        meta = {"grpc_services": ",".join(servers.names)}
        if metrics_port is not None:
            meta |= {"metrics_port": str(metrics_port), "metrics_path": METRICS_PATH}

        await servers.server.start()
        stack.push_async_callback(servers.server.stop, config.shutdown_grace)
        await servers.health_server.start()
        stack.push_async_callback(servers.health_server.stop, 0)
        await mesh.discovery.ready()
        mesh.start()
        for name in ["", *servers.names]:
            await servers.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        # In the registry (--discovery: Consul, Eureka; DNS: the platform's) while serving.
        await stack.enter_async_context(
            mesh.discovery.registered(
                Registration(
                    name=config.name,
                    instance_id=config.instance_id,
                    address=config.host,
                    port=servers.port,
                    health_port=servers.health_port,
                    version=config.version,
                    tags=("grpc", "insecure" if config.insecure else "mtls"),
                    meta=meta,
                )
            )
        )
        # Runs first at shutdown: NOT_SERVING before deregistration and the drain.
        stack.push_async_callback(servers.health.enter_graceful_shutdown)
        announce_ready(
            {
                "name": config.name,
                "instance_id": config.instance_id,
                "address": config.host,
                "port": servers.port,
                "health_port": servers.health_port,
                "metrics_port": metrics_port,
                "traces": mesh.tracing.destination,
                "trust_domain": certificates.trust_domain if certificates else None,
            }
        )
        log.info(
            "%s serving on %s:%d (health on %s:%d, metrics on %s, traces to %s)",
            config.name,
            config.host,
            servers.port,
            config.health_host,
            servers.health_port,
            f"127.0.0.1:{metrics_port}{METRICS_PATH}" if metrics_port is not None else "none",
            mesh.tracing.destination,
        )
        await stop.wait()
        log.info("shutting down %s", config.instance_id)
    log.info("stopped %s", config.instance_id)


def run_service(
    name: str,
    setup: Setup,
    argv: list[str] | None = None,
    *,
    bus_factory: BusFactory = connect_bus,
) -> None:
    """Entry point of ``python -m services.<name>``."""
    config = MeshConfig.from_args(name, sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(config, setup, global_tracer=True, bus_factory=bus_factory))
