"""Time as the services store it (integer epoch microseconds) and send it (Timestamp)."""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp


def now_micros() -> int:
    """Wall-clock now in epoch microseconds: exact, sortable, fits SQLite INTEGER."""
    return time.time_ns() // 1_000


def to_timestamp(micros: int) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(micros)
    return ts
