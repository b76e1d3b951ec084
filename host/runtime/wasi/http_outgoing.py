"""``wasi:http/outgoing-handler`` and the outgoing half of ``wasi:http/types``.

The guest builds an ``outgoing-request``, optionally writes its body, and
calls ``handle``. The destination is checked against the component's
``HttpClientPolicy`` (``providers.http_client``) right there: a destination
the link does not allow answers ``HTTP-request-denied`` before anything is
sent. Otherwise the request goes out on the event loop (aiohttp) once its body
is finished (request bodies are buffered, up to the policy's cap), and
``future-incoming-response`` becomes ready with the response head; its body is
an input stream read chunk by chunk under the policy's timeouts and size cap.
A failure reaches the guest as the WIT ``error-code``, never as a trap.

A Content-Length the request declares holds its body, as in wasmtime's
wasi-http host (``body_length``): ``outgoing-request.body`` refuses an invalid
one; a write past it fails the stream with ``HTTP-request-body-size`` (the
bytes written, refused ones included) and ``outgoing-body.finish`` at any other
length returns that error. Such a body is never sent: the request waiting on it
gets the same error in its ``future-incoming-response`` (wasmtime, which streams
the body, breaks the request off mid-way instead: ``HTTP-protocol-error``). A
request whose body was never taken is empty, so ``handle`` refuses one declaring
a length other than 0 (``HTTP-request-body-size(0)``), or an invalid one
(``HTTP-protocol-error``). The provider frames the body it sends from its real
length (``providers.http_client``), so the length on the wire is always one
value, the body's.

A component without an ``http-client`` link gets the policy that allows
nothing, so a standard ``wasi:http/proxy`` component (which always imports
``outgoing-handler``) starts, and every request it makes is denied.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wasmtime import component as wc

from host.runtime.wasi.body_length import body_size_error, content_length
from host.runtime.wasi.http_types import Fields, IncomingBody, OutgoingBody, method_name
from host.runtime.wasi.io import InputStream, IoError, Pollable, StreamFailed
from host.runtime.wasi.table import KINDS, HostObject, ResourceTable
from host.runtime.wasi.values import Err, Ok, Variant
from providers.http_client import (
    ClientError,
    HttpClient,
    HttpClientPolicy,
    OutgoingCall,
    OutgoingReply,
)

__all__ = ["HttpClientGrant", "error_variant", "functions"]


@dataclass(frozen=True)
class HttpClientGrant:
    """The host's client and what one component may reach with it."""

    client: HttpClient
    policy: HttpClientPolicy


def error_variant(exc: ClientError) -> Variant:
    """The WIT ``error-code`` value of a client failure."""
    code = exc.code
    if code == "DNS-error":
        payload = wc.Record()  # a WIT record: attributes named as its (kebab-case) fields
        for field in ("rcode", "info-code"):
            setattr(payload, field, None)
        return Variant(code, payload)
    if code in ("HTTP-request-body-size", "HTTP-response-body-size", "HTTP-request-header-size"):
        return Variant(code, None)
    if code == "internal-error":
        return Variant(code, exc.detail or None)
    return Variant(code)


class RequestOptions(HostObject):
    KIND = KINDS["request-options"]

    def __init__(self) -> None:
        # Nanoseconds, as the guest set them (None: the policy's bound).
        self.timeouts: dict[str, int | None] = {
            "connect": None,
            "first-byte": None,
            "between-bytes": None,
        }

    def seconds(self, name: str) -> float | None:
        value = self.timeouts[name]
        return None if value is None else value / 1e9


class RequestRefused(Exception):
    """A request the host will not send; ``code``: the ``error-code`` its future gets."""

    def __init__(self, code: Variant, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class _BodyBuffer:
    """An outgoing request's body: kept whole (up to a cap) until it is finished,
    and held to ``length``, the Content-Length the request declares (None: none).

    A write the body cannot take (past its length or the cap) fails the stream,
    and the body can then never be sent: ``finish`` fails too, and the request
    waiting on it is refused with the same ``error-code``. ``finish`` short of
    the length fails alike, so no request goes out framed by a length its body
    does not have.
    """

    def __init__(self, cap: int, length: int | None) -> None:
        self.cap = cap
        self.length = length
        self.data = bytearray()
        self._written = 0  # what the guest wrote, refused bytes included (as wasmtime counts)
        self.state = "open"  # then "finished" or "aborted"
        self.error: RequestRefused | None = None  # why the body cannot be sent
        self._waiters: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> concurrent.futures.Future[None] | None:
        self._written += len(chunk)
        length = self.length
        if length is not None and self._written > length:
            return self._refuse(
                body_size_error("request", self._written),
                f"wrote {self._written} bytes of a request body whose content-length is {length}",
            )
        if len(self.data) + len(chunk) > self.cap:
            return self._refuse(
                Variant("HTTP-request-body-size", None), f"request body over {self.cap} bytes"
            )
        self.data += chunk
        return None

    def _refuse(self, code: Variant, reason: str) -> concurrent.futures.Future[None]:
        self.error = self.error or RequestRefused(code, reason)
        failed: concurrent.futures.Future[None] = concurrent.futures.Future()
        failed.set_exception(StreamFailed(IoError(reason, code)))
        return failed

    def finish(self) -> Variant | None:
        """End the body; the ``error-code`` when it cannot be sent as it is."""
        length = self.length
        if self.error is None and length is not None and self._written != length:
            self.error = RequestRefused(
                body_size_error("request", self._written),
                f"finished a request body after {self._written} bytes, "
                f"its content-length declaring {length}",
            )
        if self.error is not None:
            self._end("aborted")
            return self.error.code
        self._end("finished")
        return None

    def abort(self) -> None:
        self._end("aborted")

    def _end(self, state: str) -> None:
        with self._lock:
            if self.state != "open":
                return
            self.state = state
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter()

    def when_done(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if self.state == "open":
                self._waiters.append(callback)
                return
        callback()


class OutgoingRequest(HostObject):
    KIND = KINDS["outgoing-request"]

    def __init__(self, headers: Fields) -> None:
        headers.mutable = False
        self.headers = headers
        self.method = Variant("get")
        self.scheme: Variant | None = None
        self.authority: str | None = None
        self.path_with_query: str | None = None
        self.body: _BodyBuffer | None = None


class FutureIncomingResponse(HostObject):
    """The response to come; ready once its head arrived (or the call failed)."""

    KIND = KINDS["future-incoming-response"]

    def __init__(self, table: ResourceTable) -> None:
        self._table = table
        self.future: concurrent.futures.Future[OutgoingReply] = concurrent.futures.Future()
        self.taken = False

    def ready(self) -> bool:
        return self.future.done()

    def wake(self) -> tuple[concurrent.futures.Future[Any] | None, float | None]:
        return self.future, None

    def release(self) -> None:
        if not self.future.cancel() and not self.taken and self.future.exception() is None:
            reply = self.future.result()
            self._table.loop.call_soon_threadsafe(reply.release)


class IncomingResponse(HostObject):
    KIND = KINDS["incoming-response"]

    def __init__(self, table: ResourceTable, reply: OutgoingReply) -> None:
        self.reply = reply
        self.headers = Fields(list(reply.headers), False)

        def release() -> None:
            table.loop.call_soon_threadsafe(reply.release)

        self.body: IncomingBody | None = IncomingBody(
            lambda: InputStream(_ReplySource(table, reply), on_release=release)
        )
        self._release = release

    def release(self) -> None:
        if self.body is not None:  # the body was never taken: nothing will read it
            self._release()


class _ReplySource:
    def __init__(self, table: ResourceTable, reply: OutgoingReply) -> None:
        self._table = table
        self._reply = reply

    def fetch(self) -> concurrent.futures.Future[bytes]:
        return self._table.submit(self._read())

    async def _read(self) -> bytes:
        try:
            return await self._reply.read_chunk()
        except ClientError as exc:
            raise StreamFailed(IoError(str(exc), error_variant(exc))) from exc


def functions(
    table: ResourceTable, grant: HttpClientGrant
) -> tuple[Mapping[str, Callable[..., Any]], Mapping[str, Callable[..., Any]]]:
    """(the outgoing part of wasi:http/types, wasi:http/outgoing-handler)."""
    policy = grant.policy

    def req(rep: int) -> OutgoingRequest:
        return table.get(rep, OutgoingRequest)

    def setter(attr: str) -> Callable[..., Any]:
        def set_(_s: Any, rep: int, value: Any) -> Any:
            setattr(req(rep), attr, value)
            return Ok()

        return set_

    def request_body(_s: Any, rep: int) -> Any:
        request = req(rep)
        if request.body is not None:
            return Err()
        try:
            length = content_length(request.headers.entries)
        except ValueError:
            return Err()  # as wasmtime: no body can be framed by this length
        request.body = _BodyBuffer(policy.max_request_bytes, length)
        return Ok(table.own(OutgoingBody(request.body)))

    def options(rep: int) -> RequestOptions:
        return table.get(rep, RequestOptions)

    def timeout_pair(name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
        def get(_s: Any, rep: int) -> int | None:
            return options(rep).timeouts[name]

        def set_(_s: Any, rep: int, value: int | None) -> Any:
            options(rep).timeouts[name] = value
            return Ok()

        return get, set_

    def handle(_s: Any, rep: int, options_rep: int | None) -> Any:
        request = table.take(rep, OutgoingRequest)
        opts = table.take(options_rep, RequestOptions) if options_rep is not None else None
        scheme = "https" if request.scheme is None else method_scheme(request.scheme)
        if not request.authority:
            return Err(Variant("HTTP-request-URI-invalid"))
        if not policy.allows(scheme, request.authority):
            return Err(Variant("HTTP-request-denied"))
        body = request.body
        if body is None and (refused := _bodiless_framing(request)) is not None:
            return Err(refused)
        future = FutureIncomingResponse(table)

        def send() -> None:
            if body is not None and body.state == "aborted":
                future.future.set_exception(
                    body.error or ClientError("internal-error", "request body aborted")
                )
                return
            call = OutgoingCall(
                method=method_name(request.method),
                scheme=scheme,
                authority=request.authority or "",
                path_with_query=request.path_with_query or "/",
                headers=list(request.headers.entries),
                body=bytes(body.data) if body is not None else b"",
                connect_timeout_s=opts.seconds("connect") if opts else None,
                first_byte_timeout_s=opts.seconds("first-byte") if opts else None,
                between_bytes_timeout_s=opts.seconds("between-bytes") if opts else None,
            )
            sent = table.submit(grant.client.send(policy, call))
            sent.add_done_callback(lambda done: _copy(done, future.future))

        if body is None:
            send()
        else:
            body.when_done(send)
        return Ok(table.own(future))

    def future_get(_s: Any, rep: int) -> Any:
        future = table.get(rep, FutureIncomingResponse)
        if not future.ready():
            return None
        if future.taken:
            return Err()
        future.taken = True
        try:
            reply = future.future.result()
        except ClientError as exc:
            return Ok(Err(error_variant(exc)))
        except RequestRefused as exc:
            return Ok(Err(exc.code))
        except concurrent.futures.CancelledError:
            return Ok(Err(Variant("internal-error", "cancelled")))
        return Ok(Ok(table.own(IncomingResponse(table, reply))))

    def response(rep: int) -> IncomingResponse:
        return table.get(rep, IncomingResponse)

    def consume(_s: Any, rep: int) -> Any:
        resp = response(rep)
        body, resp.body = resp.body, None
        return Err() if body is None else Ok(table.own(body))

    connect = timeout_pair("connect")
    first_byte = timeout_pair("first-byte")
    between = timeout_pair("between-bytes")
    types: dict[str, Callable[..., Any]] = {
        "[constructor]outgoing-request": lambda _s, headers: table.own(
            OutgoingRequest(table.take(headers, Fields))
        ),
        "[method]outgoing-request.body": request_body,
        "[method]outgoing-request.method": lambda _s, rep: req(rep).method,
        "[method]outgoing-request.set-method": setter("method"),
        "[method]outgoing-request.path-with-query": lambda _s, rep: req(rep).path_with_query,
        "[method]outgoing-request.set-path-with-query": setter("path_with_query"),
        "[method]outgoing-request.scheme": lambda _s, rep: req(rep).scheme,
        "[method]outgoing-request.set-scheme": setter("scheme"),
        "[method]outgoing-request.authority": lambda _s, rep: req(rep).authority,
        "[method]outgoing-request.set-authority": setter("authority"),
        "[method]outgoing-request.headers": lambda _s, rep: table.own(req(rep).headers.child()),
        "[constructor]request-options": lambda _s: table.own(RequestOptions()),
        "[method]request-options.connect-timeout": connect[0],
        "[method]request-options.set-connect-timeout": connect[1],
        "[method]request-options.first-byte-timeout": first_byte[0],
        "[method]request-options.set-first-byte-timeout": first_byte[1],
        "[method]request-options.between-bytes-timeout": between[0],
        "[method]request-options.set-between-bytes-timeout": between[1],
        "[method]future-incoming-response.subscribe": lambda _s, rep: table.own(
            Pollable(table.get(rep, FutureIncomingResponse))
        ),
        "[method]future-incoming-response.get": future_get,
        "[method]incoming-response.status": lambda _s, rep: response(rep).reply.status,
        "[method]incoming-response.headers": lambda _s, rep: table.own(
            response(rep).headers.child()
        ),
        "[method]incoming-response.consume": consume,
    }
    return types, {"handle": handle}


def _bodiless_framing(request: OutgoingRequest) -> Variant | None:
    """Why a request whose body was never taken cannot go out as it declares (None: it can).

    Its body is empty, so a Content-Length must say 0: a longer one is the body
    short of its length (as ``finish`` at 0 bytes), an invalid one frames nothing.
    """
    try:
        length = content_length(request.headers.entries)
    except ValueError:
        return Variant("HTTP-protocol-error")
    return body_size_error("request", 0) if length else None


def method_scheme(scheme: Variant) -> str:
    return str(scheme.payload) if scheme.tag == "other" else scheme.tag.lower()


def _copy(
    done: concurrent.futures.Future[OutgoingReply],
    target: concurrent.futures.Future[OutgoingReply],
) -> None:
    if target.done():  # the guest let go of the future: nobody reads this reply
        if not done.cancelled() and done.exception() is None:
            done.result().release()
        return
    if done.cancelled():
        target.cancel()
    elif (exc := done.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(done.result())
