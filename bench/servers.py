"""The servers a benchmark loads, each its own process (so /proc tells its CPU and RSS).

One servicer, served three ways: the real ``InventoryServicer`` over an in-memory stock
table (its GetStock is the cheap unary read: validate, look up, answer):

    python -m bench.servers bare                  grpcio aio, insecure, no interceptors
    python -m bench.servers tls --certs DIR       grpcio aio, mTLS (ssl_server_credentials)
    python -m bench.servers mesh -- <service flags>  through the mesh runtime, as a service

``bare`` and ``tls`` print ``BENCH_READY {"port": ...}``; ``mesh`` is ``run_service()`` with
the flags a real service takes (Consul, state dir, ...), registered in Consul under
``--name`` (default ``inventory``), and prints ``MESH_READY {...}``.

``mesh --relay`` serves the same InventoryService as a relay, registered as ``order``: its
GetStock asks ``inventory`` through the mesh, for the chain client -> order -> inventory.
With the sku ``SKU-DEADLINE`` each hop answers with the time it had left (trailers
``x-bench-left-us-<hop>``), which shows what the deadline propagation passed on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import grpc

from meshkit.server import SERVER_OPTIONS
from services.inventory.servicer import InventoryServicer
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc

READY = "BENCH_READY "
SKU = "SKU-BENCH"
DEADLINE_SKU = "SKU-DEADLINE"
TRAILER = "x-bench-left-us-"


class MemoryStock:
    """The store InventoryServicer reads, kept in a dict: the read costs next to nothing,
    so what is measured is the serving path (and the mesh's share of it)."""

    def __init__(self) -> None:
        self._stock = {
            sku: inventory_pb2.StockLevel(sku=sku, available=1_000_000)
            for sku in (SKU, DEADLINE_SKU)
        }

    async def get_stock(self, sku: str) -> inventory_pb2.StockLevel | None:
        return self._stock.get(sku)


class BenchInventory(InventoryServicer):
    """InventoryServicer; with ``SKU-DEADLINE`` it also reports the time it had left."""

    hop = "inventory"

    def __init__(self) -> None:
        super().__init__(MemoryStock())  # type: ignore[arg-type]

    async def GetStock(self, request: Any, context: Any) -> inventory_pb2.GetStockResponse:
        if request.sku == DEADLINE_SKU:
            _add_trailer(context, self.hop, context.time_remaining())
        return await super().GetStock(request, context)


class Relay(inventory_pb2_grpc.InventoryServiceServicer):
    """GetStock by asking ``inventory`` through the mesh: one more hop."""

    hop = "order"

    def __init__(self, inventory: Any) -> None:
        self._inventory = inventory

    async def GetStock(self, request: Any, context: Any) -> inventory_pb2.GetStockResponse:
        if request.sku != DEADLINE_SKU:
            return await self._inventory.GetStock(request)
        left = context.time_remaining()
        call = self._inventory.GetStock(request)
        response = await call
        _add_trailer(context, self.hop, left, await call.trailing_metadata())
        return response


def _add_trailer(context: Any, hop: str, left: float | None, downstream: Any = ()) -> None:
    """Adds ``x-bench-left-us-<hop>`` (and the downstream hops' own) to the trailers."""
    current = [(k, v) for k, v in (context.trailing_metadata() or ()) if k.startswith(TRAILER)]
    current += [(k, v) for k, v in (downstream or ()) if k.startswith(TRAILER)]
    served = [(k, v) for k, v in (context.trailing_metadata() or ()) if k == "served-by"]
    micros = str(round(left * 1e6)) if left is not None else "none"
    context.set_trailing_metadata((*served, *current, (TRAILER + hop, micros)))


async def serve_plain(credentials: grpc.ServerCredentials | None) -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)  # the mesh's socket options
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(BenchInventory(), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    print(READY + json.dumps({"address": "127.0.0.1", "port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def tls_credentials(certs: Path) -> grpc.ServerCredentials:
    """Plain mTLS: the server's leaf, client certificates required, no interceptors."""
    return grpc.ssl_server_credentials(
        [((certs / "key.pem").read_bytes(), (certs / "cert.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(),
        require_client_auth=True,
    )


def serve_mesh(relay: bool, name: str, argv: list[str]) -> None:
    """Exactly as a domain service runs (``python -m services.<name>``): ``run_service``."""
    from meshkit import Mesh, run_service

    async def setup(mesh: Mesh) -> None:
        descriptor = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]
        if relay:
            stub = mesh.stub(inventory_pb2_grpc.InventoryServiceStub, "inventory")
            mesh.add_service(Relay(stub), descriptor)
        else:
            mesh.add_service(BenchInventory(), descriptor)

    run_service(name, setup, argv)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.servers", description=__doc__)
    p.add_argument("mode", choices=["bare", "tls", "mesh"])
    p.add_argument("--certs", type=Path, help="tls: a directory with key.pem, cert.pem, ca.pem")
    p.add_argument("--relay", action="store_true", help="mesh: the relay, as `order`")
    p.add_argument("--name", help="mesh: the service name (default inventory, or order)")
    args = sys.argv[1:] if argv is None else argv
    rest = args[args.index("--") + 1 :] if "--" in args else []
    a = p.parse_args(args[: args.index("--")] if "--" in args else args)
    if a.mode == "mesh":
        serve_mesh(a.relay, a.name or ("order" if a.relay else "inventory"), rest)
    elif a.mode == "tls":
        if a.certs is None:
            p.error("tls needs --certs")
        asyncio.run(serve_plain(tls_credentials(a.certs)))
    else:
        asyncio.run(serve_plain(None))


if __name__ == "__main__":
    main()
