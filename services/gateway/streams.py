"""Server streams at the edge, in the three forms a client may ask for on a stream's path:

- NDJSON (grpc-gateway's form, the default): one ``{"result": ...}`` line per message,
  ``{"error": Status}`` last if the stream fails;
- Server-Sent Events (``Accept: text/event-stream``): a ``data:`` event per message, then
  an ``end`` or ``error`` event, and a keepalive comment when nothing has come for a while;
- a WebSocket: ``{"result": ...}`` frames, then a close; a stream refused before it began
  is an ``{"error": Status}`` frame and a close with 4000 + the HTTP status.

The route (routes.py) decides what to call; this module only carries the messages, and
stops the mesh call when the client goes away. EventSource and browsers' WebSockets cannot
set headers, so a stream may also take its token as ``?access_token=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import Message
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway.auth import unauthorized
from services.gateway.status import EdgeError
from services.gateway.transcoding import Binding

SSE_KEEPALIVE = 15.0


def token_from_query(
    authorization: str | None, query: list[tuple[str, str]]
) -> tuple[str | None, list[tuple[str, str]]]:
    """Streams may take the token as ``?access_token=`` (RFC 6750 §2.3): EventSource and
    browsers' WebSockets cannot set headers. It is not a field of the request."""
    tokens = [v for k, v in query if k == "access_token"]
    rest = [(k, v) for k, v in query if k != "access_token"]
    if len(tokens) > 1 or (tokens and authorization):
        raise unauthorized("give the token once (header or access_token)", "invalid_request")
    if tokens:
        authorization = f"Bearer {tokens[0]}"
    return authorization, rest


async def primed(stream: AsyncIterator[Message]) -> AsyncIterator[Message]:
    """``stream`` with its first message already received: EdgeError raised here, if any
    (the first message, or the error instead of it, decides the HTTP status)."""
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        return _chain(None, stream)
    return _chain(first, stream)


async def _chain(first: Message | None, rest: AsyncIterator[Message]) -> AsyncIterator[Message]:
    try:
        if first is not None:
            yield first
        async for m in rest:
            yield m
    finally:
        with contextlib.suppress(Exception):
            await rest.aclose()  # type: ignore[attr-defined]


# HTTP: NDJSON or Server-Sent Events


def http_response(request: Request, binding: Binding, messages: AsyncIterator[Message]) -> Response:
    """The stream as Server-Sent Events if the client accepts them, else as NDJSON."""
    if "text/event-stream" in request.headers.get("accept", ""):
        return StreamingResponse(
            sse(binding, messages),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return StreamingResponse(ndjson(binding, messages), media_type="application/x-ndjson")


async def sse(binding: Binding, messages: AsyncIterator[Message]) -> AsyncIterator[str]:
    """Server-Sent Events: a ``data:`` event per message, ``error`` on failure, ``end``."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for m in messages:
                await queue.put(("message", binding.response_json(m)))
            await queue.put(("end", {}))
        except EdgeError as exc:
            await queue.put(("error", exc.body()))

    task = asyncio.create_task(pump())
    n = 0
    try:
        while True:
            try:
                async with asyncio.timeout(SSE_KEEPALIVE):  # not wait_for: see mesh.outbox
                    kind, data = await queue.get()
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            n += 1
            event = "" if kind == "message" else f"event: {kind}\n"
            yield f"{event}id: {n}\ndata: {json.dumps(data)}\n\n"
            if kind != "message":
                return
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        with contextlib.suppress(Exception):
            await messages.aclose()  # type: ignore[attr-defined]


async def ndjson(binding: Binding, messages: AsyncIterator[Message]) -> AsyncIterator[str]:
    """grpc-gateway's stream form: one ``{"result": ...}`` line each, ``{"error": ...}`` last."""
    try:
        async for m in messages:
            yield json.dumps({"result": binding.response_json(m)}) + "\n"
    except EdgeError as exc:
        yield json.dumps({"error": exc.body()}) + "\n"


# WebSocket


async def refuse(ws: WebSocket, err: EdgeError) -> None:
    """A stream refused before it began: an ``{"error": Status}`` frame, then a close with
    4000 + the HTTP status (4401, 4403, 4400, ...)."""
    await ws.send_text(json.dumps({"error": err.body()}))
    await ws.close(code=4000 + err.http_status if err.http_status < 1000 else 4500)


async def relay(ws: WebSocket, binding: Binding, stream: AsyncIterator[Message]) -> None:
    """``{"result": ...}`` frames until the stream ends (close 1000) or fails (an
    ``{"error": ...}`` frame, close 1011); the stream stops if the client closes first."""
    closed = asyncio.create_task(_wait_closed(ws))
    try:
        async for item in _racing(stream, closed):
            await ws.send_text(json.dumps({"result": binding.response_json(item)}))
        await ws.close(code=1000)
    except EdgeError as exc:
        with contextlib.suppress(Exception):
            await ws.send_text(json.dumps({"error": exc.body()}))
            await ws.close(code=1011)
    except (WebSocketDisconnect, _ClientGone):
        pass
    finally:
        closed.cancel()
        with contextlib.suppress(Exception):
            await stream.aclose()  # type: ignore[attr-defined]


class _ClientGone(Exception):
    pass


async def _wait_closed(ws: WebSocket) -> None:
    """Returns when the client closes the socket (the stream then stops)."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _racing(
    stream: AsyncIterator[Message], closed: asyncio.Task[None]
) -> AsyncIterator[Message]:
    it = stream.__aiter__()
    while True:
        nxt = asyncio.ensure_future(it.__anext__())
        done, _ = await asyncio.wait({nxt, closed}, return_when=asyncio.FIRST_COMPLETED)
        if nxt not in done:
            nxt.cancel()
            with contextlib.suppress(BaseException):
                await nxt
            raise _ClientGone
        try:
            yield nxt.result()
        except StopAsyncIteration:
            return
