"""The images' HEALTHCHECK: is this container's server serving?

A service: ``grpc.health.v1.Health/Check`` (the whole server, service "") on its plaintext
loopback health port (``MESH_HEALTH_HOST``:``MESH_HEALTH_PORT``), SERVING or not. The
gateway (``GATEWAY_PORT`` set): ``GET /healthz`` on its port.

Docker runs this every few seconds in every container, so it imports no gRPC (~0.3 s of
CPU a time): the one unary call is spoken in HTTP/2 by hand, a few frames. Exit 0 healthy,
1 not (the reason on stdout, which ``docker inspect`` shows).
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import urllib.request

TIMEOUT = 3.0
PATH = b"/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def _literal(index: int, value: bytes) -> bytes:
    """A header field without indexing, its name from the static table (index < 15)."""
    return bytes([index, len(value)]) + value


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def grpc_health(host: str, port: int) -> str | None:
    """None when SERVING, else why not."""
    headers = (
        b"\x83\x86"  # :method POST, :scheme http (static table)
        + _literal(4, PATH)
        + _literal(1, f"{host}:{port}".encode())  # :authority
        + b"\x0f\x10" + bytes([16]) + b"application/grpc"  # content-type (index 31)
        + b"\x00\x02te\x08trailers"
    )  # fmt: skip
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
            + _frame(SETTINGS, 0, 0, b"")
            + _frame(HEADERS, 0x4, 1, headers)  # END_HEADERS
            + _frame(DATA, 0x1, 1, b"\x00\x00\x00\x00\x00")  # END_STREAM; an empty request
        )
        while True:
            head = _read(sock, 9)
            length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
            payload = _read(sock, length)
            if kind == SETTINGS and not flags & 0x1:
                sock.sendall(_frame(SETTINGS, 0x1, 0, b""))  # ack
            elif kind == DATA and length >= 5:
                message = payload[5:]
                return None if message == SERVING else f"not serving ({message.hex()})"
            elif kind == HEADERS and flags & 0x1:
                return "no answer (trailers only: an error status)"
            elif kind in (RST_STREAM, GOAWAY):
                return f"stream reset (frame type {kind})"


def http_health(port: int) -> str | None:
    host = os.environ.get("GATEWAY_HOST", "127.0.0.1")
    with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=TIMEOUT) as resp:
        return None if resp.status == 200 else f"/healthz answered {resp.status}"


def main() -> int:
    try:
        if os.environ.get("GATEWAY_PORT"):
            problem = http_health(int(os.environ["GATEWAY_PORT"]))
        else:
            host = os.environ.get("MESH_HEALTH_HOST", "127.0.0.1")
            problem = grpc_health(host, int(os.environ.get("MESH_HEALTH_PORT", "8086")))
    except (OSError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    print(problem or "serving")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
