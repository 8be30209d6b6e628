"""``make run``: Consul, NATS and every service on loopback, until Ctrl-C.

Consul runs on its default ports (HTTP 8500) with the mesh CA as its Connect CA root;
NATS (JetStream, the event broker) on its default port 4222, its store in .state/nats;
intentions come from infra/consul/intentions/; each service gets a fixed port so the
README's grpcurl calls work as written; `operator` gets a client certificate for grpcurl.
State (CA, databases, logs) lives in .state/. A service (or the gateway) that dies is
restarted with exponential backoff (0.5 s doubling to 30 s); more than --restart-burst
restarts within --restart-interval seconds is a crash loop, given up on while the rest
keep running (devstack/supervisor.py). Each service serves Prometheus metrics on a
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

from devstack.brokers import LABELS
from devstack.edge import console_admin_token_file, start_console_client
from devstack.stack import DOMAIN_SERVICES, Stack
from devstack.supervisor import RestartPolicy, Supervisor
from devstack.tools import ROOT
from meshkit.tools.certs import main as mesh_cli


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--state-dir", type=Path, default=ROOT / ".state")
    p.add_argument("--insecure", action="store_true", help="plaintext (development only)")
    p.add_argument(
        "--free-ports", action="store_true", help="Consul and services on free ports (tests)"
    )
    p.add_argument(
        "--restart-burst",
        type=int,
        default=5,
        help="restarts of a service allowed within --restart-interval; then it is left down",
    )
    p.add_argument("--restart-interval", type=float, default=60.0, help="seconds (the window)")
    p.add_argument(
        "--restart-max-delay", type=float, default=30.0, help="the longest wait before a restart"
    )
    p.add_argument(
        "--broker",
        default=os.environ.get("BROKER") or "nats",
        choices=("nats", "kafka", "rabbitmq", "sqs"),
        help="the event broker (make run BROKER=...)",
    )
    p.add_argument(
        "--discovery",
        default=os.environ.get("DISCOVERY") or "consul",
        choices=("consul", "eureka", "dns"),
        help="the registry the services find each other in (make run DISCOVERY=...)",
    )
    p.add_argument(
        "--database",
        default=os.environ.get("DATABASE") or "sqlite",
        choices=("sqlite", "postgres"),
        help="each service's database (make run DATABASE=...)",
    )
    a = p.parse_args()
    policy = RestartPolicy(
        burst=a.restart_burst, interval=a.restart_interval, max_delay=a.restart_max_delay
    )
    state: Path = a.state_dir
    traces = state / "traces.db"
    for stale in (traces, traces.with_name("traces.db-wal"), traces.with_name("traces.db-shm")):
        stale.unlink(missing_ok=True)  # the local trace sink holds this run's traces only

    stack = Stack(
        state,
        fixed_ports=not a.free_ports,
        insecure=a.insecure,
        broker=a.broker,
        discovery=a.discovery,
        database=a.database,
    )
    print(f"starting Consul (dev agent) and {LABELS[a.broker]} ...", flush=True)
    try:
        stack.start()
        assert stack.consul is not None
        consul = stack.consul
        print("intentions:", ", ".join(stack.intentions))
        consul.service_token("operator")  # the operator's identity, for its certificate
        # The identity of the client examples in clients/ (docs/clients.md): its token is
        # in .state/consul/tokens/storefront.token; `certs issue storefront` gives its leaf.
        consul.service_token("storefront")
        mesh_cli(
            ["--state-dir", str(state), "certs", "issue", "operator", "--consul", consul.http_addr]
        )
        running = list(stack.start_services(DOMAIN_SERVICES).values())
        print("starting Ory Hydra (OAuth2) and the API gateway ...", flush=True)
        # The console's admin actions (intentions, faults) are opt-in: CONSOLE_ADMIN=1
        # gives the gateway a Consul token of their own (docs/console.md).
        console_admin = os.environ.get("CONSOLE_ADMIN", "") == "1"
        admin_args = (
            ["--console-admin-token-file", str(console_admin_token_file(consul))]
            if console_admin
            else []
        )
        edge = stack.start_edge(*admin_args)
        console_link = start_console_client(edge, state)
        print(f"\nmeshkit-shop is up (logs in {stack.log_dir}):")
        print(f"  {'consul':<10} http://{consul.http_addr}  (UI at /ui)")
        if stack.eureka is not None:  # DISCOVERY=eureka
            print(
                f"  {'eureka':<10} {stack.eureka.url}  (the registry; dashboard at"
                f" http://127.0.0.1:{stack.eureka.port}/)"
            )
        if stack.postgres is not None:  # DATABASE=postgres
            print(
                f"  {'postgres':<10} {stack.postgres.url}  (a database and a role per service;"
                f" data in {stack.postgres.pgdata}, passwords in {stack.postgres.auth_dir})"
            )
        if stack.nats is not None:  # the event broker: NATS, or BROKER=...'s
            nats = stack.nats
            print(f"  {'nats':<10} {nats.url}  (JetStream, monitoring on :{nats.monitor_port})")
        if stack.broker_server is not None:
            where = f"{stack.broker_server.url}  ({LABELS[a.broker]}, data in {state / a.broker})"
            print(f"  {a.broker:<10} {where}")
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
        admin = "ON" if console_admin else "off: make run CONSOLE_ADMIN=1"
        print(f"  {'console':<10} {edge.url}/console  (admin actions {admin})")
        print(f"  {'':<10} sign in: {console_link}  (`make console`: a fresh link)")
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
        # A service (or the gateway) that dies is started again, with backoff; a crash
        # loop is given up on while the rest keep running (devstack/supervisor.py).
        supervisor = Supervisor.for_stack(stack, policy, log=lambda line: print(line, flush=True))
        for s in [*running, edge.gateway]:
            supervisor.watch(s)
        given_up: set[str] = set()
        while not stop.wait(0.1):
            supervisor.poll()
            for name in set(supervisor.given_up) - given_up:
                given_up.add(name)
                up = [n for n in supervisor.names if n not in given_up]
                print(
                    f"{name} is down for good (see {stack.log_dir}/); still running:"
                    f" {', '.join(up) or 'nothing'}. Ctrl-C stops everything.",
                    flush=True,
                )
    finally:
        print("\nstopping ...", flush=True)
        stack.close()
        print("stopped.")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C while starting: what was up is stopped already
        sys.exit(130)
