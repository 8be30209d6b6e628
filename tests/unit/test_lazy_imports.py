"""A domain service's process loads only what its configuration selects.

A module imported is memory held for the life of the process (a domain service's peak RSS
is mostly its imports; `make bench` section 3 measures it). Each check imports what a
service imports in a fresh interpreter and reads its ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVICES = ("inventory", "order", "payment", "shipping")

# Loaded only when the configuration selects them (another broker, database, registry, an
# OTLP exporter), or never in a service: py-consul's blocking client (requests), the CLIs'
# and the console's libraries, cryptography (the key helper, meshkit.security.keypair,
# runs it in a child process) and the CA's code.
NEVER_BY_DEFAULT = (
    "cryptography",
    "meshkit.security.pki",
    "meshkit.security.keypair",
    "requests",
    "urllib3",
    "charset_normalizer",
    "consul.std",
    "aiokafka",
    "aio_pika",
    "aiormq",
    "aiobotocore",
    "botocore",
    "asyncpg",
    "dns",
    "meshkit.discovery.eureka",
    "meshkit.discovery.dns",
    "meshkit.events.kafka",
    "meshkit.events.rabbitmq",
    "meshkit.events.sqs",
    "meshkit.database.postgres",
    "meshkit.security.signer",
    "meshkit.tools",
    "opentelemetry.exporter",
    "yaml",
    "jsonschema",
    "devstack",
    "services.gateway",
)


def loaded_after(code: str) -> set[str]:
    """The modules of a fresh interpreter after ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def unexpected(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules for top in NEVER_BY_DEFAULT if m == top or m.startswith(top + ".")
    )


def test_a_service_imports_no_backend_it_was_not_configured_for() -> None:
    imports = "; ".join(f"import services.{name}.app" for name in SERVICES)
    modules = loaded_after(f"{imports}; import meshkit.server, meshkit.events.nats")
    assert "consul.aio" in modules  # the mesh's Consul client is there
    assert unexpected(modules) == []


def test_py_consul_still_gives_its_blocking_client_when_asked() -> None:
    modules = loaded_after(
        "import meshkit, sys\n"
        "assert 'requests' not in sys.modules\n"
        "import consul, consul.aio\n"
        "assert issubclass(consul.Timeout, consul.ConsulException)\n"
        "assert consul.Check is consul.check.Check\n"
        "assert 'requests' not in sys.modules\n"
        "from consul.std import Consul as Std\n"
        "assert consul.Consul is Std and consul.__version__\n"
    )
    assert "requests" in modules


def test_py_consul_imported_before_meshkit_is_left_as_it_is() -> None:
    loaded_after(
        "import consul\n"
        "import meshkit, sys\n"
        "assert sys.modules['consul'] is consul and consul.Consul and consul.__version__\n"
    )
