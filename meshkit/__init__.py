"""meshkit: the in-process service mesh every service runs on.

Discovery and registration (Consul, Eureka or DNS SRV), mTLS with SPIFFE identities on the
Connect CA's trust root, authorization by intentions, deadlines, health, reflection,
telemetry, and events through a transactional outbox. It knows nothing of the
application: what is the application's own (its event stream, its envelope, its end-user
metadata) comes from the mesh file. A service holds only its domain logic and says "serve
me"::

    async def setup(mesh: Mesh) -> None:
        db = await mesh.database(SCHEMA)
        mesh.add_service(InventoryServicer(db))

    run_service("inventory", setup)

Where things are: ``security/`` (identity, certificates, authorization, end user),
``rpc/`` (deadlines, interceptors, calls, channels), ``discovery/`` (a backend per
registry) and ``consul.py``, ``database/`` (SQLite, PostgreSQL, migrations), ``events/``
(the bus and its brokers: NATS, Kafka, RabbitMQ, SQS, memory; outbox, envelopes),
``telemetry/`` (tracing, logs, metrics, trace sink), ``server.py``/``lifecycle.py``
(serving one instance), ``testing.py`` (an in-process mesh for tests), ``tools/`` (the
certs CLI, the trace viewer).
"""

# First, before any module imports py-consul: its package without its blocking client
# (requests), which the mesh never uses (see meshkit/_pyconsul.py).
from meshkit import _pyconsul  # noqa: F401
from meshkit.config import MeshConfig
from meshkit.mesh import Mesh
from meshkit.server import run_service, serve

__all__ = ["Mesh", "MeshConfig", "run_service", "serve"]
