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

from lattice.direct import DirectRequests, NoResponders, Reply, Unsent
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
    check_size(nc.max_payload, data, what)


def check_size(limit: int, data: bytes, what: Callable[[], str]) -> None:
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
    who = (component_id, interface, function)
    check_payload(nc, payload, lambda: f"the arguments of {_who(*who)}")
    try:
        msg = await nc.request(
            subjects.rpc(component_id, interface),
            payload,
            timeout=timeout_s,
            headers=_request_headers(function, headers),
        )
    except nats.errors.NoRespondersError as exc:
        raise _no_host(who) from exc
    except nats.errors.TimeoutError as exc:
        raise _late(who, timeout_s) from exc
    return _result(msg.headers, msg.data, who)


def invoke_direct(
    requests: DirectRequests,
    subjects: Subjects,
    component_id: str,
    interface: str,
    function: str,
    payload: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> bytes:
    """``invoke`` from a blocking thread, on its own connection (``lattice.direct``).

    Raises ``Unsent`` when the request did not leave (the caller may send it through
    ``invoke``), else what ``invoke`` raises.
    """
    who = (component_id, interface, function)
    subject = subjects.rpc(component_id, interface)
    try:
        try:
            reply = _send_direct(requests, subject, payload, who, headers, timeout_s)
        except Unsent:
            # Not sent: a connection idle for minutes may have been closed by the
            # server (it pings, nobody reads). A new one, once.
            reply = _send_direct(requests, subject, payload, who, headers, timeout_s)
    except (Unsent, PayloadTooLarge):
        raise  # nothing was sent
    except NoResponders as exc:
        raise _no_host(who) from exc
    except TimeoutError as exc:
        raise _late(who, timeout_s) from exc
    except (OSError, LatticeError) as exc:
        raise RequestTimeout(f"{_who(*who)}: the connection failed while waiting: {exc}") from exc
    return _result(reply.headers, reply.data, who)


def _send_direct(
    requests: DirectRequests,
    subject: str,
    payload: bytes,
    who: tuple[str, str, str],
    headers: Mapping[str, str] | None,
    timeout_s: float,
) -> Reply:
    conn = requests.connection()
    check_size(conn.max_payload, payload, lambda: f"the arguments of {_who(*who)}")
    return conn.request(subject, payload, _request_headers(who[2], headers), timeout_s)


def _request_headers(function: str, headers: Mapping[str, str] | None) -> dict[str, str]:
    return {**headers, FUNC_HEADER: function} if headers else {FUNC_HEADER: function}


def _no_host(who: tuple[str, str, str]) -> RequestTimeout:
    return RequestTimeout(f"no host runs {_who(*who)}")


def _late(who: tuple[str, str, str], timeout_s: float) -> RequestTimeout:
    return RequestTimeout(f"{_who(*who)} did not answer within {timeout_s:g} s")


def _result(headers: Mapping[str, str] | None, data: bytes, who: tuple[str, str, str]) -> bytes:
    """A reply's payload, or the RemoteError its status header names."""
    if headers:
        status = headers.get(STATUS_HEADER, "ok")
        if status != "ok":
            raise RemoteError(f"{_who(*who)}: {data.decode(errors='replace')}", status)
    return data


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
