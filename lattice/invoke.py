"""Component invocations over NATS: request/reply on ``P.L.rpc.<component>.<interface>``.

Every host running a component answers in the component's queue group, so NATS
spreads calls over its replicas. A request carries the function name and the
trace context in headers and the wire-encoded arguments (``host.wire.codec``) as its
body. A reply is the encoded result with no headers, or an error text with a status
header naming the failure: a success costs neither end a header to build or parse.
Payloads over the server's maximum are refused before sending, with the sizes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from lattice.errors import LatticeError, RemoteError, RequestTimeout
from lattice.responder import Responder
from lattice.subjects import Subjects

log = logging.getLogger(__name__)

FUNC_HEADER = "wl-func"
STATUS_HEADER = "wl-status"  # on error replies; a reply without it succeeded

# handler(function name, body, headers) -> encoded result; raise to reply an error.
InvocationHandler = Callable[[str, bytes, Mapping[str, str]], Awaitable[bytes]]


class PayloadTooLarge(LatticeError):
    pass


def check_payload(nc: Client, data: bytes, what: Callable[[], str]) -> None:
    """``what()`` names the payload in the error; it is only formatted for one."""
    limit = nc.max_payload
    if limit and len(data) > limit:
        raise PayloadTooLarge(
            f"{what()} is {len(data)} bytes, over the lattice's max payload of {limit} bytes"
        )


def _who(component_id: str, interface: str, function: str) -> str:
    return f"component {component_id} ({interface}#{function})"


async def invoke(
    nc: Client,
    subjects: Subjects,
    component_id: str,
    interface: str,
    function: str,
    payload: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> bytes:
    """Call ``interface#function`` on any host running ``component_id``."""
    check_payload(
        nc, payload, lambda: f"the arguments of {_who(component_id, interface, function)}"
    )
    try:
        msg = await nc.request(
            subjects.rpc(component_id, interface),
            payload,
            timeout=timeout_s,
            headers={**headers, FUNC_HEADER: function} if headers else {FUNC_HEADER: function},
        )
    except nats.errors.NoRespondersError as exc:
        raise RequestTimeout(f"no host runs {_who(component_id, interface, function)}") from exc
    except nats.errors.TimeoutError as exc:
        raise RequestTimeout(
            f"{_who(component_id, interface, function)} did not answer within {timeout_s:g} s"
        ) from exc
    if msg.headers:
        status = msg.headers.get(STATUS_HEADER, "ok")
        if status != "ok":
            who = _who(component_id, interface, function)
            raise RemoteError(f"{who}: {msg.data.decode(errors='replace')}", status)
    return msg.data


async def serve_component(
    nc: Client,
    subjects: Subjects,
    component_id: str,
    interface: str,
    handler: InvocationHandler,
    *,
    concurrency: int,
) -> Responder:
    """Answer invocations of one exported interface, in the component's queue group.

    Up to ``concurrency`` calls run at once, so a host's replicas all get work.
    """

    async def on_request(msg: Msg) -> None:
        headers = msg.headers or {}  # a dict of this message's own
        function = headers.get(FUNC_HEADER, "")
        reply_headers: dict[str, str] | None = None
        try:
            body = await handler(function, msg.data, headers)
            check_payload(
                nc, body, lambda: f"the result of {component_id} ({interface}#{function})"
            )
        except Exception as exc:  # every failure becomes an error reply, never a crash
            body = str(exc).encode()
            reply_headers = {STATUS_HEADER: getattr(exc, "status", "failed")}
        if msg.reply:
            try:
                await nc.publish(msg.reply, body, headers=reply_headers)
            except nats.errors.Error as exc:
                log.warning("could not answer an invocation of %s: %s", component_id, exc)

    return await Responder.start(
        nc,
        subjects.rpc(component_id, interface),
        on_request,
        queue=component_id,
        concurrency=concurrency,
    )
