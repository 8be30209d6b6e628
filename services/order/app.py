"""Wires the order service into the mesh, with mesh stubs for the services the saga calls.

Settings: none of its own; the database path and the downstream addresses come from the mesh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.order.servicer import OrderServicer
from services.order.store import SCHEMA, OrderStore
from shop.inventory.v1 import inventory_pb2_grpc
from shop.order.v1 import order_pb2
from shop.payment.v1 import payment_pb2_grpc
from shop.shipping.v1 import shipping_pb2_grpc

if TYPE_CHECKING:
    from services.mesh import Mesh


async def setup(mesh: Mesh) -> None:
    store = OrderStore(await mesh.database(SCHEMA))
    servicer = OrderServicer(
        store,
        inventory=mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory"),
        payment=mesh.stub(payment_pb2_grpc.PaymentServiceStub, "payment"),
        shipping=mesh.stub(shipping_pb2_grpc.ShippingServiceStub, "shipping"),
    )
    mesh.add_service(order_pb2.DESCRIPTOR.services_by_name["OrderService"], servicer)
    mesh.on_shutdown(servicer.drain)
