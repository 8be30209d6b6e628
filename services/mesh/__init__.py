"""The mesh runtime every service runs on: Consul discovery and registration, mTLS with
identities from the Connect CA's trust root, authorization by intentions, deadline
policy and propagation, health, reflection and telemetry.

A service holds only its domain logic and says "serve me"::

    async def setup(mesh: Mesh) -> None:
        db = await mesh.database(SCHEMA)
        mesh.add_service(pb2.DESCRIPTOR.services_by_name["InventoryService"], servicer)

    run_service("inventory", setup)
"""

from services.mesh.app import Mesh, run_service, serve
from services.mesh.config import MeshConfig

__all__ = ["Mesh", "MeshConfig", "run_service", "serve"]
