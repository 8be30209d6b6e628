"""The event bus on NATS JetStream: one stream of all the application's events (its name
and subjects from the mesh file's ``[events]``), a durable pull consumer per service
(pulled ahead by a standing pull, ``meshkit.events.nats_pull``), explicit acks,
redelivery, and publish de-duplication by message id (``Nats-Msg-Id``, within the
stream's duplicate window).

With a credential (the file of an nkey seed) the connection authenticates as one
identity, and its inboxes are ``_INBOX.<identity>.*`` (``inbox_prefix``), so a broker's
permissions can give each identity its own replies only. Such a service is not the
stream's admin: the stream is created by a privileged identity (devstack's ``admin``),
and the service only checks that it is there (``manage_stream=False``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from meshkit.config import MeshConfig
from meshkit.events.bus import ConsumerLag, EventBus, Handler, Outgoing
from meshkit.events.nats_pull import ConsumerGone, StandingPull

log = logging.getLogger("mesh.events")

DUPLICATE_WINDOW = 120.0  # seconds
# Seconds before an unacknowledged delivery is sent again: what an instance that died with
# messages in hand delays them by. A batch's messages are acknowledged once their handling
# has committed (one transaction per batch), and a redelivery of one in progress has no
# second effect.
ACK_WAIT = 5.0
MAX_DELIVER = 50
BATCH = 32
PUBLISH_TIMEOUT = 5.0  # seconds for the stream to acknowledge a publish


def _outcome(future: asyncio.Future[Any]) -> BaseException | None:
    """What the stream answered a publish of ``publish_many``: None if it stored it (or
    had it already: a duplicate), else the error."""
    if not future.done():
        return nats.errors.TimeoutError()
    exc = future.exception()
    if exc is not None:
        return exc
    msg = future.result()
    if msg.headers and msg.headers.get(api.Header.STATUS) == "503":
        return nats.js.errors.NoStreamResponseError()
    data = msg.data
    if data.startswith(b'{"stream":') and b'"error"' not in data:
        return None  # the usual answer ({"stream":...,"seq":...}), read without parsing
    try:
        answer = json.loads(msg.data)
    except ValueError:
        return nats.js.errors.Error(f"not a publish acknowledgement: {msg.data[:100]!r}")
    if "error" in answer:
        return nats.js.errors.APIError.from_error(answer["error"])
    if "stream" not in answer:
        return nats.js.errors.Error(f"not a publish acknowledgement: {msg.data[:100]!r}")
    return None


def inbox_prefix(identity: str) -> str:
    """Where the replies to ``identity``'s requests (and its pull deliveries) go."""
    return f"_INBOX.{identity}"


def credential_options(creds: Path | str | None, identity: str) -> dict[str, Any]:
    """``nats.connect`` options to authenticate with the nkey seed in ``creds`` as
    ``identity`` (none without a credential: an anonymous connection)."""
    if creds is None:
        return {}
    return {"nkeys_seed": str(creds), "inbox_prefix": inbox_prefix(identity)}


@dataclass
class _Delivery:
    msg: Msg

    @property
    def data(self) -> bytes:
        return self.msg.data

    @functools.cached_property
    def attempt(self) -> int:
        """From the reply subject: ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream
        seq>.<consumer seq>.<time>.<pending>``, read directly in that (the usual) form
        rather than through nats-py's whole ``metadata``."""
        tokens = (self.msg.reply or "").split(".")
        if len(tokens) == 9 and tokens[4].isdigit():
            return int(tokens[4]) or 1
        return int(self.msg.metadata.num_delivered or 1)

    async def ack(self) -> None:
        await self.msg.ack()

    async def nak(self, delay: float) -> None:
        await self.msg.nak(delay=delay)


class NatsBus:
    """A connection to NATS that reconnects forever; the stream is created if missing
    (``manage_stream``), or only looked for."""

    def __init__(
        self, nc: nats.NATS, stream: str, subjects: Sequence[str], manage_stream: bool = True
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=5.0)
        self.stream = stream
        self.subjects = list(subjects)
        self.manage_stream = manage_stream
        # publish_many's acknowledgements: its reply subjects' prefix, the futures by token
        self._acks_prefix: str | None = None
        self._acks: dict[str, asyncio.Future[Any]] = {}
        self._tokens = itertools.count()
        self._pulls: set[StandingPull] = set()  # the consumers' standing pulls

    @classmethod
    async def connect(
        cls,
        url: str,
        name: str,
        *,
        stream: str,
        subjects: Sequence[str],
        creds: Path | str | None = None,
        identity: str = "",
        manage_stream: bool = True,
    ) -> NatsBus:
        """Connected (as ``identity`` with the seed in ``creds``, if given), the stream
        ensured; raises if the broker refuses the connection."""

        async def error(exc: Exception) -> None:
            log.warning("nats: %s", exc)

        buses: list[NatsBus] = []  # the bus this connection is for, once made

        async def reconnected() -> None:
            for bus in buses:
                await bus._reconnected()

        nc = await nats.connect(
            servers=[url],
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            error_cb=error,
            reconnected_cb=reconnected,
            # subjects are the event types and the client's own inboxes: checking each one
            # at every publish (and ack) costs more than the publish's own framing
            skip_subject_validation=True,
            **credential_options(creds, identity or name),
        )
        bus = cls(nc, stream, subjects, manage_stream)
        buses.append(bus)
        await bus.ensure_stream()
        return bus

    async def ensure_stream(self) -> None:
        if not self.manage_stream:
            try:
                await self.js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                log.warning(
                    "stream %s not found (its admin creates it): publishing and consuming"
                    " wait for it",
                    self.stream,
                )
            return
        config = api.StreamConfig(
            name=self.stream,
            subjects=self.subjects,
            storage=api.StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW,
            max_age=7 * 24 * 3600.0,
        )
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await self.js.update_stream(config)

    async def publish(self, subject: str, data: bytes, msg_id: str, key: str = "") -> None:
        # One stream, in publish order: ``key`` adds nothing.
        await self.js.publish(subject, data, headers={api.Header.MSG_ID: msg_id})

    async def publish_many(self, messages: Sequence[Outgoing]) -> list[BaseException | None]:
        """Every message sent at once (in order), then the stream's acknowledgements
        awaited together (``PUBLISH_TIMEOUT``), read from one reply subscription of the
        bus's own: one publish's request machinery (a reply inbox, a future and a timer
        each, its PubAck parsed into an object) costs more than the publish."""
        if self._acks_prefix is None:
            prefix = self.nc.new_inbox() + "."
            await self.nc.subscribe(prefix + "*", cb=self._on_ack)
            self._acks_prefix = prefix
        loop = asyncio.get_running_loop()
        pending: list[tuple[str, asyncio.Future[Any]]] = []
        results: list[BaseException | None] = []
        try:
            for m in messages:
                token = str(next(self._tokens))
                future = loop.create_future()
                self._acks[token] = future
                pending.append((token, future))
                try:
                    await self.nc.publish(
                        m.subject,
                        m.data,
                        reply=self._acks_prefix + token,
                        headers={api.Header.MSG_ID: m.msg_id},
                    )
                except Exception as exc:  # closed, or the buffer full while reconnecting
                    future.set_exception(exc)
            await asyncio.wait([f for _, f in pending], timeout=PUBLISH_TIMEOUT)
            for _, future in pending:
                results.append(_outcome(future))
        finally:
            for token, future in pending:
                self._acks.pop(token, None)
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()  # retrieved: never "exception was never retrieved"
        return results

    async def _on_ack(self, msg: Msg) -> None:
        assert self._acks_prefix is not None
        future = self._acks.pop(msg.subject[len(self._acks_prefix) :], None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def consume(self, durable: str, subjects: Sequence[str], handler: Handler) -> None:
        config = api.ConsumerConfig(
            durable_name=durable,
            filter_subjects=list(subjects),
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=ACK_WAIT,
            max_deliver=MAX_DELIVER,
            max_ack_pending=4 * BATCH,
        )
        while True:
            try:
                await self.js.add_consumer(self.stream, config)
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("consumer %s: %s; retrying", durable, exc)
                await asyncio.sleep(1.0)
                continue
            pull = StandingPull(self.nc, self.stream, durable, batch=BATCH)
            await pull.start()
            self._pulls.add(pull)
            try:
                await self._deliver(pull, handler)
            except ConsumerGone as exc:
                log.warning("consumer %s is not there (%s); creating it again", durable, exc)
            finally:
                self._pulls.discard(pull)
                with contextlib.suppress(nats.errors.Error):
                    await pull.stop()

    @staticmethod
    async def _deliver(pull: StandingPull, handler: Handler) -> None:
        """Hands what ``pull`` brings to ``handler``, a batch at a time, until the consumer
        is gone (``ConsumerGone``) or the task is cancelled."""
        while True:
            try:
                msgs = await pull.take(wait=1.0)
            except nats.errors.Error as exc:  # disconnected: the client reconnects
                log.warning("consumer pull: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if msgs:
                await handler([_Delivery(m) for m in msgs])

    async def _reconnected(self) -> None:
        """A new connection: the pull requests of the old one may be gone; ask again."""
        for pull in self._pulls:
            pull.reset()

    async def lag(self, durable: str) -> ConsumerLag | None:
        """From JetStream's consumer info (one request to the server)."""
        try:
            info = await self.js.consumer_info(self.stream, durable, timeout=2.0)
        except nats.js.errors.NotFoundError:
            return None
        return ConsumerLag(pending=info.num_pending or 0, ack_pending=info.num_ack_pending or 0)

    async def close(self) -> None:
        # Consumers and the relay have stopped and every publish was acknowledged, so there
        # is nothing to drain (and draining a cancelled pull subscription can hang).
        await self.nc.close()


async def connect(config: MeshConfig) -> EventBus:
    """NATS JetStream at ``config.nats_url`` (``--nats``), as this service's identity with
    its credential (``config.nats_creds``); a service with a credential of its own binds
    to the stream, created beforehand by the broker's admin."""
    events = config.policy.events
    return await NatsBus.connect(
        config.nats_url,
        name=config.instance_id or config.name,
        stream=events.stream,
        subjects=events.subjects,
        creds=config.nats_creds,
        identity=config.name,
        manage_stream=config.nats_creds is None,
    )
