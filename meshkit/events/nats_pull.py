"""A standing pull on a JetStream durable consumer, as nats.go's ``Consume`` keeps one.

nats-py's ``fetch`` asks the server for a batch with one request, then reads each message
through ``next_msg`` (a task and a timer each); an idle or half-busy consumer pays a
request, a "no messages" answer and a second, lingering request for every batch, however
small. Here pull requests for up to ``batch`` messages stay outstanding: the server pushes
each message to the consumer's inbox as it arrives, a subscription callback appends it to
a list, and the consumer takes whatever has arrived at once. A new request tops the
outstanding count back up once half of it was delivered.

The count ("credit") is kept from what the inbox receives: a message takes one; a request
that ends unfilled (408 on expiry, 409 for a consumer limit) gives back the messages it
still had, which the server names in ``Nats-Pending-Messages``. Requests lost with the
server (a restart) are noticed by silence: nothing heard for ``expires`` plus a margin
while messages are asked for, the credit is reset and a new request sent; a reconnect
resets it at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import api

log = logging.getLogger("mesh.events")

PENDING_MESSAGES = "Nats-Pending-Messages"


class ConsumerGone(Exception):
    """The consumer is not there (deleted, or nothing answers its requests): create it
    again."""


class StandingPull:
    """Messages of the durable ``durable`` on ``stream``, pulled ahead, taken in batches."""

    def __init__(
        self,
        nc: nats.NATS,
        stream: str,
        durable: str,
        *,
        batch: int,
        expires: float = 5.0,
        prefix: str = api.DEFAULT_PREFIX,
    ) -> None:
        self._nc = nc
        self._subject = f"{prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._batch = batch
        self._expires = expires
        self._inbox = nc.new_inbox()
        self._sub: Subscription | None = None
        self._ready: list[Msg] = []
        self._arrived = asyncio.Event()
        self._credit = 0  # messages asked for, not yet delivered nor given back
        self._heard = time.monotonic()
        self._gone = ""  # why the consumer is not there, once the server says so

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()

    @property
    def credit(self) -> int:
        """Messages asked for and not yet delivered nor given back."""
        return self._credit

    def reset(self) -> None:
        """Forget the outstanding requests (lost with a connection): ask again."""
        self._credit = 0

    async def take(self, wait: float) -> list[Msg]:
        """What has arrived, at once; else the first messages to arrive within ``wait``
        seconds (an empty list if none). Raises ``ConsumerGone``."""
        await self._top_up()
        if not self._ready:
            self._arrived.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._arrived.wait()
            except TimeoutError:
                pass
        if self._gone:
            raise ConsumerGone(f"{self._subject}: {self._gone}")
        ready, self._ready = self._ready, []
        return ready

    async def _top_up(self) -> None:
        if self._credit > 0 and time.monotonic() - self._heard > self._expires + 2.0:
            log.info("pull on %s: no answer for %.0fs; asking again", self._subject, self._expires)
            self._credit = 0  # the requests died with the server: ask again
        if self._credit > self._batch // 2:
            return
        wanted = self._batch - self._credit
        expires = int(self._expires * 1e9)
        await self._nc.publish(
            self._subject,
            b'{"batch":%d,"expires":%d}' % (wanted, expires),
            reply=self._inbox,
        )
        if self._credit == 0:
            self._heard = time.monotonic()  # the silence is counted from the first request
        self._credit += wanted

    async def _on_msg(self, msg: Msg) -> None:
        self._heard = time.monotonic()
        headers = msg.headers
        status = headers.get(api.Header.STATUS) if headers else None
        if not status:
            self._credit = max(self._credit - 1, 0)
            self._ready.append(msg)
            self._arrived.set()
            return
        if status == "100":  # an idle heartbeat or flow control: nothing asked for
            return
        left = headers.get(PENDING_MESSAGES) if headers else None
        if left is not None:  # a request ended with these still unfilled
            self._credit = max(self._credit - int(left), 0)
        else:  # a request ended without saying what it had left: ask afresh
            self._credit = 0
        description = str(headers.get(api.Header.DESCRIPTION, "")) if headers else ""
        if status == "503" or (status == "409" and "deleted" in description.lower()):
            # no responder for the consumer's requests, or the consumer deleted under them
            self._gone = f"{status} {description or 'no responders'}"
            self._arrived.set()
        elif status not in ("404", "408", "409"):
            log.warning("pull on %s: status %s %s", self._subject, status, description)
        else:
            log.debug("pull on %s: status %s %s", self._subject, status, description)
