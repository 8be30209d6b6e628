"""``make run``: Consul, NATS and every service on loopback, until Ctrl-C.

Consul runs on its default ports (HTTP 8500) with the mesh CA as its Connect CA root;
NATS (JetStream, the event broker) on its default port 4222, its store in .state/nats;
intentions come from infra/consul/intentions/; each service gets a fixed port so the
README's grpcurl calls work as written; `operator` gets a client certificate for grpcurl.
State (CA, databases, logs) lives in .state/. Each service serves Prometheus metrics on a
free loopback port (in the summary, and in its Consul meta); spans go to .state/traces.db,
new for each run (`make trace ORDER=<id>`), or to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT
is set.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from devstack.consul import ConsulAgent
from devstack.edge import Edge, start_edge
from devstack.intentions import apply_intentions
from devstack.nats import NatsServer
from devstack.services import ServiceProcess, start_service
from devstack.tools import ROOT
from meshkit.security.certificates import consul_ca_config, load_or_create_ca
from meshkit.tools.certs import main as mesh_cli

# Order last: it calls inventory (discovery would cope either way).
PORTS = {"inventory": 50052, "payment": 50053, "shipping": 50054, "order": 50051}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state")
    p.add_argument("--insecure", action="store_true", help="plaintext (development only)")
    p.add_argument(
        "--free-ports", action="store_true", help="Consul and services on free ports (tests)"
    )
    a = p.parse_args()
    state: Path = a.state_dir
    (state / "logs").mkdir(parents=True, exist_ok=True)
    ca = load_or_create_ca(state / "ca")
    traces = state / "traces.db"
    for stale in (traces, traces.with_name("traces.db-wal"), traces.with_name("traces.db-shm")):
        stale.unlink(missing_ok=True)  # the local trace sink holds this run's traces only

    consul = ConsulAgent(
        use_free_ports=a.free_ports,
        extra_config=consul_ca_config(ca),
        log_path=state / "logs" / "consul.log",
    )
    nats = NatsServer(
        port=0 if a.free_ports else 4222,
        monitor_port=0 if a.free_ports else 8222,
        store_dir=state / "nats",
        log_path=state / "logs" / "nats.log",
    )
    print("starting Consul (dev agent) and NATS (JetStream) ...", flush=True)
    consul.start()
    running: list[ServiceProcess] = []
    edge: Edge | None = None
    try:
        nats.start()
        print("intentions:", ", ".join(apply_intentions(consul)))
        mesh_cli(
            ["--state-dir", str(state), "certs", "issue", "operator", "--consul", consul.http_addr]
        )
        log = open(state / "logs" / "services.log", "a")  # noqa: SIM115 (open for the run)
        for name, port in PORTS.items():
            args = ["--port", "0" if a.free_ports else str(port)]
            args += ["--insecure"] if a.insecure else []
            running.append(
                start_service(
                    name,
                    consul_http_addr=consul.http_addr,
                    nats_url=nats.url,
                    state_dir=state,
                    args=args,
                    log=log,
                )
            )
        for s in running:
            consul.wait_passing(s.name)
        print("starting Ory Hydra (OAuth2) and the API gateway ...", flush=True)
        edge = start_edge(state, consul, nats, a.free_ports, log)
        print(f"\nmeshkit-shop is up (logs in {state / 'logs'}):")
        print(f"  {'consul':<10} http://{consul.http_addr}  (UI at /ui)")
        print(f"  {'nats':<10} {nats.url}  (JetStream, monitoring on :{nats.monitor_port})")
        for s in running:
            print(
                f"  {s.name:<10} {s.address}  (gRPC + mTLS, health on :{s.info['health_port']},"
                f" metrics at http://127.0.0.1:{s.info.get('metrics_port')}/metrics)"
            )
        sink = running[0].info.get("traces")
        if sink == "otlp":
            endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            )
            print(f"  {'traces':<10} OTLP to {endpoint}")
        elif sink and sink != "none":
            print(f"  {'traces':<10} {sink}  (make trace ORDER=<order id>)")
        print(f"  {'hydra':<10} {edge.hydra.issuer}  (OAuth2; admin on {edge.hydra.admin_url})")
        print(f"  {'gateway':<10} {edge.url}  (REST, /graphql, /docs; `make token`)")
        certs = state / "certs" / "operator"
        print(
            "\ntry (see the README for more):\n  ~/.cache/meshkit-shop/bin/grpcurl"
            f" -cacert {certs}/ca.pem -cert {certs}/cert.pem -key {certs}/key.pem"
            f" -max-time 5 {running[0].address} list\n\nCtrl-C stops everything.",
            flush=True,
        )
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.wait(1.0):
            for s in [*running, *([edge.gateway] if edge else [])]:
                if s.process.poll() is not None:
                    print(f"{s.name} exited with {s.process.returncode}; see .state/logs/")
                    stop.set()
    finally:
        print("\nstopping ...", flush=True)
        if edge is not None:
            edge.stop()
        for s in reversed(running):
            s.stop()
        nats.stop()
        consul.stop()
        print("stopped.")


if __name__ == "__main__":
    sys.exit(main())
