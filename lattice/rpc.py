"""Request/reply over NATS with msgpack models, timeouts and clear errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import BaseModel

from lattice import tracing
from lattice.errors import BadMessage, ConnectError, RemoteError, RequestTimeout
from lattice.messages import Reply, decode, encode
from lattice.responder import Responder

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[Reply]]


# How long to wait before asking once more when no responder was there.
NO_RESPONDERS_RETRY_S = 0.2


async def request(
    nc: Client,
    subject: str,
    message: BaseModel,
    *,
    timeout_s: float,
    who: str,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """One request, one reply; ``who`` names the peer in errors ("host abc")."""
    payload, wire_headers = encode(message), dict(headers or {}) or None
    try:
        try:
            msg = await nc.request(subject, payload, timeout=timeout_s, headers=wire_headers)
        except nats.errors.NoRespondersError:
            # Nobody received it, so asking again is safe; once, a moment later, covers
            # a responder whose subscription the server is still registering.
            await asyncio.sleep(NO_RESPONDERS_RETRY_S)
            msg = await nc.request(subject, payload, timeout=timeout_s, headers=wire_headers)
    except nats.errors.NoRespondersError as exc:
        raise RequestTimeout(f"no {who} answered: is it running on this lattice?") from exc
    except nats.errors.TimeoutError as exc:
        raise RequestTimeout(f"{who} did not reply within {timeout_s:g} s") from exc
    except nats.errors.ConnectionClosedError as exc:
        raise ConnectError("the NATS connection is closed") from exc
    return decode(Reply, msg.data)


async def request_ok(
    nc: Client, subject: str, message: BaseModel, *, timeout_s: float, who: str
) -> Reply:
    """Like ``request`` but an error reply raises RemoteError."""
    reply = await request(nc, subject, message, timeout_s=timeout_s, who=who)
    if not reply.ok:
        raise RemoteError(f"{who}: {reply.error}", reply.code or "failed")
    return reply


async def scatter(nc: Client, subject: str, message: BaseModel, *, wait_s: float) -> list[Reply]:
    """Publish once and gather every reply that arrives within ``wait_s``."""
    inbox = nc.new_inbox()
    replies: list[Reply] = []

    async def collect(msg: Msg) -> None:
        if not msg.data:
            return  # a "no responders" status: nobody is listening yet
        try:
            replies.append(decode(Reply, msg.data))
        except BadMessage as exc:
            log.warning("ignoring bad reply on %s: %s", subject, exc)

    sub = await nc.subscribe(inbox, cb=collect)
    try:
        await nc.publish(subject, encode(message), reply=inbox)
        await asyncio.sleep(wait_s)
    finally:
        await sub.unsubscribe()
    return replies


async def serve(
    nc: Client,
    subject: str,
    handler: Handler,
    *,
    queue: str = "",
    concurrency: int = 1,
    span: str | None = None,
    host_id: str = "",
) -> Responder:
    """Answer requests on ``subject``; a handler error still gets an error reply.

    With the default concurrency of 1, requests are handled one at a time in order.
    With ``span``, each request is a server span continuing the trace its headers carry.
    """

    async def handle(msg: Msg) -> Reply:
        if span is None:
            return await handler(msg.subject, msg.data)
        with tracing.server_span(span, msg.headers or {}, host_id):
            return await handler(msg.subject, msg.data)

    async def on_request(msg: Msg) -> None:
        try:
            reply = await handle(msg)
        except BadMessage as exc:
            reply = Reply.failure("bad_request", str(exc))
        except Exception as exc:
            log.exception("handler for %s failed", msg.subject)
            reply = Reply.failure("failed", f"{type(exc).__name__}: {exc}")
        if msg.reply:
            try:
                await msg.respond(encode(reply))
            except nats.errors.Error as exc:
                log.warning("could not reply on %s: %s", msg.subject, exc)

    return await Responder.start(nc, subject, on_request, queue=queue, concurrency=concurrency)
