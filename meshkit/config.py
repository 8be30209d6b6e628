"""Runtime configuration: read once at start from flags, environment and the mesh file
(``infra/mesh/mesh.toml`` of the working directory unless ``--mesh-file``/``MESH_FILE``).

The mesh file is where an application names what is its own: the event stream and its
subjects, the envelope type of its events and the modules that register them, the
metadata key that carries the end user. The runtime knows none of them otherwise."""

from __future__ import annotations

import argparse
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Relative to the working directory (the project's root, where make runs).
DEFAULT_MESH_FILE = Path("infra/mesh/mesh.toml")
DEFAULT_STATE_DIR = Path(".state")
DEFAULT_INTENTIONS_DIR = Path("infra/consul/intentions")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


# 1 % of new traces, as in production meshes (Istio's default); make run and the tests
# set MESH_TRACE_SAMPLE=1 (devstack) to follow every order.
DEFAULT_TRACE_SAMPLE = 0.01


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``"250ms"``, ``"5s"``, ``"2m"``, ``"24h"``."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"bad duration {text!r}: expected e.g. 250ms, 5s, 2m, 24h")
    return float(m.group(1)) * _UNIT[m.group(2)]


@dataclass(frozen=True)
class MethodDeadline:
    default: float
    max: float


@dataclass(frozen=True)
class DeadlinePolicy:
    """Per-method default and maximum deadlines, in seconds."""

    default: float = 5.0
    max: float = 30.0
    min_remaining: float = 0.005
    methods: dict[str, MethodDeadline] = field(default_factory=dict)

    def for_method(self, method: str) -> MethodDeadline:
        return self.methods.get(method) or MethodDeadline(self.default, self.max)


@dataclass(frozen=True)
class AdmissionPolicy:
    """Server-side admission (``meshkit.rpc.admission``): the most calls of a method one
    instance handles at once (0: no limit; ``methods`` overrides it per method), and the
    refusal of calls with less time left than the method usually takes (an EWMA of its
    successful calls with weight ``ewma_alpha``, once ``min_samples`` calls are seen)."""

    max_in_flight: int = 256
    deadline_aware: bool = True
    ewma_alpha: float = 0.1
    min_samples: int = 20
    methods: dict[str, int] = field(default_factory=dict)

    def max_in_flight_of(self, method: str) -> int:
        return self.methods.get(method, self.max_in_flight)

    @classmethod
    def from_toml(cls, data: Mapping[str, Any]) -> AdmissionPolicy:
        methods = data.get("methods", {})
        policy = cls(
            max_in_flight=int(data.get("max_in_flight", cls.max_in_flight)),
            deadline_aware=bool(data.get("deadline_aware", cls.deadline_aware)),
            ewma_alpha=float(data.get("ewma_alpha", cls.ewma_alpha)),
            min_samples=int(data.get("min_samples", cls.min_samples)),
            methods={name: int(v["max_in_flight"]) for name, v in methods.items()},
        )
        if policy.max_in_flight < 0 or any(v < 0 for v in policy.methods.values()):
            raise ValueError("[admission] max_in_flight must be 0 (no limit) or more")
        if not 0.0 < policy.ewma_alpha <= 1.0:
            raise ValueError("[admission] ewma_alpha must be in (0, 1]")
        return policy


@dataclass(frozen=True)
class EventsSettings:
    """The application's event stream: where its events go and what carries them.

    ``envelope`` is ``module:Class`` of a protobuf message with the envelope's fields
    (event_id, event_type, occur_time, correlation_id, causation_id, source,
    trace_context, payload); ``registry`` lists the modules whose import registers the
    event types an envelope may carry. ``owners`` maps each event type to the one service
    that may publish it (``[events.owners]``): the broker's permissions are made from it,
    and a consumer rejects an event whose envelope names another source."""

    stream: str = "MESH_EVENTS"
    subjects: tuple[str, ...] = ("events.>",)
    envelope: str = ""
    registry: tuple[str, ...] = ()
    owners: Mapping[str, str] = field(default_factory=dict)

    def owned_by(self, service: str) -> list[str]:
        """The event types ``service`` publishes (its broker subjects), sorted."""
        return sorted(t for t, owner in self.owners.items() if owner == service)


@dataclass(frozen=True)
class EndUserSettings:
    """The metadata keys by which the edge passes the end user (and its client) inward,
    who may assert a subject (``asserted_by``) and who may call methods that scope by
    owner without one (``unscoped``): identities' service names; empty means nobody."""

    subject_metadata: str = "x-mesh-subject"
    client_id_metadata: str = "x-mesh-client-id"
    asserted_by: tuple[str, ...] = ()
    unscoped: tuple[str, ...] = ()


@dataclass(frozen=True)
class MeshPolicy:
    """What the mesh file holds: deadlines, admission, open methods, the event stream and
    the end user."""

    deadlines: DeadlinePolicy = field(default_factory=DeadlinePolicy)
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    open_prefixes: tuple[str, ...] = ()
    events: EventsSettings = field(default_factory=EventsSettings)
    end_user: EndUserSettings = field(default_factory=EndUserSettings)
    resilience: ResilienceSettings = field(default_factory=lambda: ResilienceSettings())

    def is_open(self, method: str) -> bool:
        return method.startswith(self.open_prefixes)

    @classmethod
    def load(cls, path: Path) -> MeshPolicy:
        data = tomllib.loads(path.read_text())
        d = data.get("deadlines", {})
        deadlines = DeadlinePolicy(
            default=parse_duration(d.get("default", "5s")),
            max=parse_duration(d.get("max", "30s")),
            min_remaining=parse_duration(d.get("min_remaining", "5ms")),
            methods={
                name: MethodDeadline(parse_duration(v["default"]), parse_duration(v["max"]))
                for name, v in d.get("methods", {}).items()
            },
        )
        ev = data.get("events", {})
        user = data.get("end_user", {})
        return cls(
            deadlines=deadlines,
            admission=AdmissionPolicy.from_toml(data.get("admission", {})),
            open_prefixes=tuple(data.get("open_methods", {}).get("prefixes", ())),
            events=EventsSettings(
                stream=ev.get("stream", EventsSettings.stream),
                subjects=tuple(ev.get("subjects", EventsSettings.subjects)),
                envelope=ev.get("envelope", ""),
                registry=tuple(ev.get("registry", ())),
                owners=dict(ev.get("owners", {})),
            ),
            end_user=EndUserSettings(
                subject_metadata=user.get("subject_metadata", EndUserSettings.subject_metadata),
                client_id_metadata=user.get(
                    "client_id_metadata", EndUserSettings.client_id_metadata
                ),
                asserted_by=tuple(user.get("asserted_by", ())),
                unscoped=tuple(user.get("unscoped", ())),
            ),
            resilience=ResilienceSettings.from_toml(data.get("resilience", {})),
        )


@dataclass(frozen=True)
class ResiliencePolicy:
    """The client side's protection for calls to one service (``meshkit.rpc.resilience``):
    its circuit breaker, the outlier ejection of its endpoints, its bulkhead (the most
    calls in flight to it from this instance; 0: no limit) and hedging (off by default)."""

    breaker: bool = True
    breaker_window: float = 10.0
    breaker_failure_ratio: float = 0.5
    breaker_min_calls: int = 20
    breaker_open: float = 5.0
    breaker_half_open_calls: int = 3
    ejection: bool = True
    ejection_consecutive: int = 5
    ejection_interval: float = 10.0
    ejection_base: float = 30.0
    ejection_max_percent: int = 50
    max_in_flight: int = 1024
    hedging: bool = False
    hedge_delay: float = 0.05

    def merged(self, data: Mapping[str, Any], where: str) -> ResiliencePolicy:
        """This policy with the keys of a mesh-file table (durations as ``"5s"``)."""
        from dataclasses import fields, replace

        kinds = {f.name: f.type for f in fields(self)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key == "services":
                continue
            kind = kinds.get(key)
            if kind is None:
                raise ValueError(f"[{where}] unknown key {key!r}")
            if key in _RESILIENCE_DURATIONS:
                values[key] = parse_duration(value)
            elif kind == "bool":
                values[key] = bool(value)
            elif kind == "int":
                values[key] = int(value)
            else:
                values[key] = float(value)
        return replace(self, **values)


_RESILIENCE_DURATIONS = frozenset(
    {"breaker_window", "breaker_open", "ejection_interval", "ejection_base", "hedge_delay"}
)


@dataclass(frozen=True)
class ResilienceSettings:
    """``[resilience]`` defaults, ``[resilience.services.<name>]`` overrides, and the
    switch ``MESH_RESILIENCE=off`` (read once, at load) that bypasses the whole layer."""

    enabled: bool = True
    defaults: ResiliencePolicy = field(default_factory=ResiliencePolicy)
    services: Mapping[str, ResiliencePolicy] = field(default_factory=dict)

    def for_service(self, name: str) -> ResiliencePolicy:
        return self.services.get(name, self.defaults)

    @classmethod
    def from_toml(cls, data: Mapping[str, Any]) -> ResilienceSettings:
        defaults = ResiliencePolicy().merged(data, "resilience")
        services = {
            name: defaults.merged(table, f"resilience.services.{name}")
            for name, table in data.get("services", {}).items()
        }
        enabled = os.environ.get("MESH_RESILIENCE", "on").strip().lower() not in {
            "off", "0", "false", "no",
        }  # fmt: skip
        return cls(enabled=enabled, defaults=defaults, services=services)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class MeshConfig:
    """Everything the runtime needs to serve one instance of one service."""

    name: str
    version: str = "0.1.0"
    host: str = "127.0.0.1"
    port: int = 0
    health_port: int = 0
    # Where the plaintext health port listens: loopback by default; a pod sets its own IP
    # (or 0.0.0.0) so the kubelet's gRPC probes and a node's Consul agent reach it.
    health_host: str = "127.0.0.1"
    instance_id: str = ""
    consul_http_addr: str = "127.0.0.1:8500"
    # This workload's Consul ACL token: what Consul knows it by, and its proof to the signer.
    consul_token: str = field(default_factory=lambda: os.environ.get("CONSUL_HTTP_TOKEN", ""))
    # The signer (meshkit.security.signer), the only holder of the CA key: https://host:port.
    signer_url: str = field(default_factory=lambda: os.environ.get("MESH_SIGNER_URL", ""))
    nats_url: str = "nats://127.0.0.1:4222"
    # This instance's NATS credential: the file of its nkey seed (None: no credential,
    # which a broker with authorization refuses).
    nats_creds: Path | None = None
    # Which backend of each kind this instance uses (docs/brokers.md, docs/discovery.md,
    # docs/databases.md):
    # the event broker (nats, kafka, rabbitmq, sqs) at ``broker_url`` (NATS: ``nats_url``),
    # the registry (consul, eureka, dns) at ``discovery_url`` (Consul: ``consul_http_addr``),
    # the database (sqlite, postgres) at ``database_url`` (SQLite: ``db_path``).
    broker: str = "nats"
    broker_url: str = ""
    discovery: str = "consul"
    discovery_url: str = ""
    database: str = "sqlite"
    database_url: str = ""
    state_dir: Path = DEFAULT_STATE_DIR
    db_path: Path = Path()
    insecure: bool = False
    connect: bool = True
    cert_ttl: float = 24 * 3600.0
    trust_domain: str = "meshkit.local"
    shutdown_grace: float = 5.0
    policy: MeshPolicy = field(default_factory=MeshPolicy)
    intentions_dir: Path = DEFAULT_INTENTIONS_DIR
    # Observability: the Prometheus port on 127.0.0.1 (0: a free one; negative: none),
    # JSON log lines, an access log line per RPC, and the local trace sink (a file shared
    # by the run's processes; None: <state_dir>/traces.db) unless traces go to OTLP.
    metrics_port: int = 0
    log_json: bool = False
    access_log: bool = False
    local_traces: bool = True
    traces_db: Path | None = None
    # The share of new traces recorded (a call in a trace follows its caller's decision).
    trace_sample: float = DEFAULT_TRACE_SAMPLE

    @property
    def ca_dir(self) -> Path:
        """The public CA root (``ca.pem``) for use without Consul; never the CA key."""
        return self.state_dir / "ca"

    @property
    def trace_sink(self) -> Path | None:
        """The local trace sink file, or None when local traces are off."""
        if not self.local_traces:
            return None
        return self.traces_db or self.state_dir / "traces.db"

    @classmethod
    def from_args(cls, name: str, argv: list[str] | None = None) -> MeshConfig:
        """Flags win over the environment (MESH_*, CONSUL_HTTP_ADDR), which wins over defaults."""
        env = os.environ
        p = argparse.ArgumentParser(prog=f"python -m services.{name}")
        p.add_argument("--host", default=env.get("MESH_HOST", "127.0.0.1"))
        p.add_argument("--port", type=int, default=int(env.get("MESH_PORT", "0")))
        p.add_argument("--health-port", type=int, default=int(env.get("MESH_HEALTH_PORT", "0")))
        p.add_argument(
            "--health-host",
            default=env.get("MESH_HEALTH_HOST", "127.0.0.1"),
            help="the plaintext health port's address (a pod: its IP, for the kubelet's probes)",
        )
        p.add_argument("--instance-id", default=env.get("MESH_INSTANCE_ID", ""))
        p.add_argument(
            "--consul", default=env.get("CONSUL_HTTP_ADDR", "127.0.0.1:8500"), help="host:port"
        )
        p.add_argument(
            "--consul-token-file",
            default=env.get("CONSUL_HTTP_TOKEN_FILE", ""),
            help="a file with this workload's Consul ACL token (else $CONSUL_HTTP_TOKEN)",
        )
        p.add_argument(
            "--signer",
            default=env.get("MESH_SIGNER_URL", ""),
            help="the URL of the signer that issues the leaves (https://127.0.0.1:<port>)",
        )
        p.add_argument(
            "--nats",
            default=env.get("NATS_URL", "nats://127.0.0.1:4222"),
            help="the event broker (NATS with JetStream)",
        )
        p.add_argument(
            "--nats-creds",
            type=Path,
            default=env.get("MESH_NATS_CREDS") or None,
            help="the file of this service's NATS nkey seed (its broker credential)",
        )
        p.add_argument(
            "--broker",
            default=env.get("MESH_BROKER", "nats"),
            help="the event broker: nats (default), kafka, rabbitmq, sqs",
        )
        p.add_argument(
            "--broker-url",
            default=env.get("MESH_BROKER_URL", ""),
            help="where the broker is, when it is not NATS (see --nats)",
        )
        p.add_argument(
            "--discovery",
            default=env.get("MESH_DISCOVERY", "consul"),
            help="the registry: consul (default), eureka, dns",
        )
        p.add_argument(
            "--discovery-url",
            default=env.get("MESH_DISCOVERY_URL", ""),
            help="where the registry is, when it is not Consul (see --consul)",
        )
        p.add_argument(
            "--database",
            default=env.get("MESH_DATABASE", "sqlite"),
            help="the service's database: sqlite (default, at --db), postgres",
        )
        p.add_argument(
            "--database-url",
            default=env.get("MESH_DATABASE_URL", ""),
            help="the database's address, when it is not SQLite (a postgresql:// DSN)",
        )
        p.add_argument(
            "--state-dir", type=Path, default=Path(env.get("MESH_STATE_DIR", DEFAULT_STATE_DIR))
        )
        p.add_argument("--db", type=Path, default=env.get("MESH_DB_PATH"))
        p.add_argument(
            "--mesh-file", type=Path, default=Path(env.get("MESH_FILE", DEFAULT_MESH_FILE))
        )
        p.add_argument(
            "--insecure",
            action="store_true",
            default=_env_bool("MESH_INSECURE", False),
            help="plaintext, no authentication (development only)",
        )
        p.add_argument(
            "--no-connect",
            dest="connect",
            action="store_false",
            default=_env_bool("MESH_CONNECT", True),
            help="the local CA and intentions files instead of Consul's Connect CA and intentions",
        )
        p.add_argument(
            "--intentions-dir",
            type=Path,
            default=Path(env.get("MESH_INTENTIONS_DIR", DEFAULT_INTENTIONS_DIR)),
            help="intentions used when Connect is off (--no-connect)",
        )
        p.add_argument("--cert-ttl", default=env.get("MESH_CERT_TTL", "24h"))
        p.add_argument("--trust-domain", default=env.get("MESH_TRUST_DOMAIN", "meshkit.local"))
        p.add_argument("--shutdown-grace", default=env.get("MESH_SHUTDOWN_GRACE", "5s"))
        p.add_argument(
            "--metrics-port",
            type=int,
            default=int(env.get("MESH_METRICS_PORT", "0")),
            help="Prometheus /metrics on 127.0.0.1 (0: a free port, -1: none)",
        )
        p.add_argument(
            "--log-json",
            action="store_true",
            default=_env_bool("MESH_LOG_JSON", env.get("MESH_LOG_FORMAT") == "json"),
            help="JSON log lines (default: human-readable)",
        )
        p.add_argument(
            "--access-log",
            action=argparse.BooleanOptionalAction,
            default=_env_bool("MESH_ACCESS_LOG", False),
            help="a log line for every RPC, not only the failed ones (make run turns it on)",
        )
        p.add_argument(
            "--trace-sample",
            type=float,
            default=float(env.get("MESH_TRACE_SAMPLE", DEFAULT_TRACE_SAMPLE)),
            help=f"share of new traces recorded, 0..1 (default {DEFAULT_TRACE_SAMPLE})",
        )
        traces = env.get("MESH_TRACES_DB", "")
        p.add_argument(
            "--traces-db",
            default=traces,
            help="the local trace sink (default <state-dir>/traces.db; 'off': none);"
            " unused when OTEL_EXPORTER_OTLP_ENDPOINT is set",
        )
        a = p.parse_args(argv)
        traces_off = a.traces_db.strip().lower() in {"off", "none", "0"}
        consul = a.consul.removeprefix("http://")
        return cls(
            name=name,
            host=a.host,
            port=a.port,
            health_port=a.health_port,
            health_host=a.health_host,
            instance_id=a.instance_id,
            consul_http_addr=consul,
            consul_token=(
                Path(a.consul_token_file).read_text().strip()
                if a.consul_token_file
                else env.get("CONSUL_HTTP_TOKEN", "")
            ),
            signer_url=a.signer,
            nats_url=a.nats,
            nats_creds=a.nats_creds,
            broker=a.broker,
            broker_url=a.broker_url,
            discovery=a.discovery,
            discovery_url=a.discovery_url,
            database=a.database,
            database_url=a.database_url,
            state_dir=a.state_dir,
            db_path=a.db or a.state_dir / "data" / f"{name}.db",
            insecure=a.insecure,
            connect=a.connect,
            cert_ttl=parse_duration(a.cert_ttl),
            trust_domain=a.trust_domain,
            shutdown_grace=parse_duration(a.shutdown_grace),
            policy=MeshPolicy.load(a.mesh_file),
            intentions_dir=a.intentions_dir,
            metrics_port=a.metrics_port,
            log_json=a.log_json,
            access_log=a.access_log,
            local_traces=not traces_off,
            traces_db=Path(a.traces_db) if a.traces_db and not traces_off else None,
            trace_sample=a.trace_sample,
        )

    def with_instance(self, port: int, health_port: int) -> MeshConfig:
        """This config with the ports actually bound and an instance id derived from them."""
        from dataclasses import replace

        iid = self.instance_id or f"{self.name}-{socket.gethostname()}-{port}"
        return replace(self, port=port, health_port=health_port, instance_id=iid)
