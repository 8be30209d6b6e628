"""A saga participant's ledger of its steps: what an event left for a step to come, and
the tombstone of a step cancelled before it arrived.

A participant of an event-driven flow (a saga) often learns what to do before it may do
it, and may learn that the flow is cancelled before either: payment hears OrderPlaced
(the amount, the token) but captures only on StockReserved, and OrderCancelled can come
between, or, handled by another instance, before OrderPlaced. The ledger keeps one row
per (flow id, step):

- ``remember(flow_id, payload)``: the step is PENDING with what it needs (any JSON
  value); False, and nothing changes, if the flow has that step already, or a tombstone;
- ``get(flow_id)``: the step as it is (``None`` if never heard of), so the event that
  triggers it acts only on a PENDING step, and waits (raise, to be redelivered) for one
  not yet remembered;
- ``finish(flow_id)``: PENDING becomes DONE (``take(flow_id)``: both at once, for a
  step with nothing to wait for);
- ``cancel(flow_id)``: PENDING becomes CANCELLED, or a CANCELLED tombstone is left when
  the step has not arrived, so a later ``remember`` records nothing. A DONE step stays
  DONE: undoing what it did (a refund) is the participant's compensation.

The payload is kept only while the step is PENDING (a payment token is not kept past
its capture). Every method runs in ``db.transaction()``, so it joins the transaction of
the event handler that calls it: the step's new state, the participant's own writes, the
events it emits and the record of the event handled commit together or not at all.

The table is among the runtime's migrations, in every service's database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from meshkit.database import RUNTIME, Database, fetch_one
from meshkit.times import now_micros

# Its table, mesh_saga_steps: the runtime's migrations (meshkit/migrations/).
SCHEMA = RUNTIME

PENDING = "PENDING"
DONE = "DONE"
CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Step:
    flow_id: str
    step: str
    status: str  # PENDING | DONE | CANCELLED
    payload: Any  # what remember() was given, while PENDING; None after
    create_time: int
    update_time: int

    @property
    def pending(self) -> bool:
        return self.status == PENDING


class StepLedger:
    """One step (``"capture"``, ``"ship"``) of a participant, per flow id, in ``db``."""

    def __init__(self, db: Database, step: str) -> None:
        self._db = db
        self.step = step

    async def remember(self, flow_id: str, payload: Any = None) -> bool:
        """The step is PENDING with ``payload``; False if the flow has the step already
        (or its tombstone), which is kept as it is."""
        now = now_micros()
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO mesh_saga_steps VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (flow_id, step) DO NOTHING",
                (flow_id, self.step, PENDING, json.dumps(payload), now, now),
            )
            return cur.rowcount == 1

    async def take(self, flow_id: str) -> bool:
        """The step is DONE at once (``remember`` then ``finish`` in one statement, for a
        step that needs nothing kept); False if the flow has the step already (or its
        tombstone), which is kept as it is."""
        return await self._leave(flow_id, DONE)

    async def get(self, flow_id: str) -> Step | None:
        """The step of ``flow_id``, read in the caller's transaction (its own writes seen)."""
        async with self._db.transaction() as conn:
            row = await fetch_one(
                conn,
                "SELECT * FROM mesh_saga_steps WHERE flow_id = ? AND step = ? FOR UPDATE",
                (flow_id, self.step),
            )
        if row is None:
            return None
        return Step(
            flow_id=row["flow_id"],
            step=row["step"],
            status=row["status"],
            payload=json.loads(row["payload"]),
            create_time=row["create_time"],
            update_time=row["update_time"],
        )

    async def finish(self, flow_id: str) -> bool:
        """A PENDING step is DONE (its payload forgotten); False if it was not PENDING."""
        return await self._close(flow_id, DONE)

    async def cancel(self, flow_id: str) -> bool:
        """A PENDING step is CANCELLED, or a CANCELLED tombstone is left if the flow has no
        such step yet; False if the step was DONE or CANCELLED already (left as it is)."""
        async with self._db.transaction():
            return await self._leave(flow_id, CANCELLED) or await self._close(flow_id, CANCELLED)

    async def _leave(self, flow_id: str, status: str) -> bool:
        """The step, with nothing kept, in ``status`` if the flow has no such step yet;
        False if it has one (left as it is)."""
        now = now_micros()
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO mesh_saga_steps VALUES (?, ?, ?, 'null', ?, ?)"
                " ON CONFLICT (flow_id, step) DO NOTHING",
                (flow_id, self.step, status, now, now),
            )
            return cur.rowcount == 1

    async def _close(self, flow_id: str, status: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE mesh_saga_steps SET status = ?, payload = 'null', update_time = ?"
                " WHERE flow_id = ? AND step = ? AND status = ?",
                (status, now_micros(), flow_id, self.step, PENDING),
            )
            return cur.rowcount == 1
