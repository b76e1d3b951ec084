"""``wasi:http/types`` resources, and the incoming exchange they serve.

An ``Exchange`` is one request the http-server provider hands to a component
that exports ``wasi:http/incoming-handler``: the runtime calls ``handle`` with
two handles, an ``incoming-request`` and a ``response-outparam``. From there
the guest drives it through host functions on its worker thread:

- the request body is an input stream over the provider's ``RequestBody``
  (chunks as the client sends them; the provider's size cap and timeouts hold,
  and a breach fails the stream and, if no response has started, answers
  413/408/400);
- ``response-outparam.set`` sends the status and headers at once;
- the response body's output stream hands each chunk to the provider's sink in
  order (``http_response``: writes made before ``set`` wait for it, and count
  against the stream's write budget meanwhile; sends are held back while the
  guest runs, and a response whole when the call returns goes out in one write);
- a Content-Length the response declares holds its body: a write past it fails
  and ``outgoing-body.finish`` at another length returns
  ``HTTP-response-body-size`` (as in wasmtime), and the response is broken off;
  an invalid one makes ``outgoing-response.body`` fail, and the response set
  without a body fails the exchange (a 500 naming the problem in the log);
- ``outgoing-body.finish`` ends the response; dropping the body unfinished
  aborts it (the client sees a truncated response, as the spec asks);

Header rules: names are HTTP tokens, values carry no CR, LF or NUL, and the
connection-level names (``connection``, ``transfer-encoding``...) are
forbidden. Headers a request or response hands out are immutable children.
Trailers: the provider (providers.http_protocol) neither reads nor sends HTTP/1.1 trailers, so
incoming trailers are always none and outgoing ones are dropped.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from host.runtime.wasi.body_length import content_length
from host.runtime.wasi.http_response import ResponseBody, ResponseSender
from host.runtime.wasi.io import (
    Always,
    ChunkSink,
    InputStream,
    IoError,
    OutputStream,
    Pollable,
    StreamFailed,
)
from host.runtime.wasi.table import KINDS, CallScope, HostObject, ResourceTable, WasiTrap
from host.runtime.wasi.values import OK, Err, Ok, Variant
from providers.http_messages import bodiless_status
from providers.http_server import BodyError, ResponseSink, StreamedRequest

__all__ = [
    "Exchange",
    "Fields",
    "IncomingBody",
    "OutgoingBody",
    "functions",
    "method_name",
    "method_variant",
]

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
FORBIDDEN = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "http2-settings",
    }
)
_METHODS = ("get", "head", "post", "put", "delete", "connect", "options", "trace", "patch")


def method_variant(method: str) -> Variant:
    lowered = method.lower()
    return (
        Variant(lowered) if lowered in _METHODS and method.isupper() else Variant("other", method)
    )


def method_name(method: Variant) -> str:
    return str(method.payload) if method.tag == "other" else method.tag.upper()


def scheme_variant(scheme: str) -> Variant:
    return Variant(scheme.upper()) if scheme in ("http", "https") else Variant("other", scheme)


def header_problem(name: str, value: bytes | None = None) -> Variant | None:
    """The ``header-error`` of a name (and value), or None when both are fine."""
    if not _TOKEN.match(name.encode("latin-1", "replace")):
        return Variant("invalid-syntax")
    if value is not None and (b"\r" in value or b"\n" in value or b"\0" in value):
        return Variant("invalid-syntax")
    if name.lower() in FORBIDDEN:
        return Variant("forbidden")
    return None


class Fields(HostObject):
    """Headers or trailers. Children of a request or response share its list, immutably."""

    KIND = KINDS["fields"]

    def __init__(self, entries: list[tuple[str, bytes]], mutable: bool) -> None:
        self.entries = entries
        self.mutable = mutable

    def child(self) -> Fields:
        return Fields(self.entries, False)

    def get(self, name: str) -> list[bytes]:
        name = name.lower()
        return [v for k, v in self.entries if k == name]

    def change(self, name: str, values: list[bytes] | None, append: bool = False) -> Any:
        """set (values), delete (None) or append (one value); a result<_, header-error>."""
        if not self.mutable:
            return Err(Variant("immutable"))
        for value in values or [b""]:
            problem = header_problem(name, value)
            if problem is not None:
                return Err(problem)
        name = name.lower()
        if not append:
            self.entries[:] = [(k, v) for k, v in self.entries if k != name]
        self.entries.extend((name, bytes(v)) for v in values or [])
        return Ok()


class IncomingBody(HostObject):
    KIND = KINDS["incoming-body"]

    def __init__(self, make_stream: Callable[[], InputStream]) -> None:
        self._make_stream: Callable[[], InputStream] | None = make_stream

    def stream(self) -> InputStream | None:
        make, self._make_stream = self._make_stream, None
        return None if make is None else make()


class FutureTrailers(HostObject):
    """Trailers of an incoming body: none (the provider does not read trailers)."""

    KIND = KINDS["future-trailers"]

    def __init__(self) -> None:
        self.taken = False


class IncomingRequest(HostObject):
    KIND = KINDS["incoming-request"]

    def __init__(self, request: StreamedRequest, body: IncomingBody) -> None:
        self.request = request
        self.headers = Fields([(k.lower(), v) for k, v in request.headers], False)
        self.body: IncomingBody | None = body


class BodySink(ChunkSink, Protocol):
    """Where an outgoing body goes: a response's ``ResponseBody``, or a request's buffer."""

    def finish(self) -> Variant | None:
        """The body is complete; the ``error-code`` when it cannot be (its length is off)."""
        ...

    def abort(self) -> None:
        """The guest dropped the body unfinished."""
        ...


class OutgoingBody(HostObject):
    """A body the guest writes: a response's (to the exchange) or a request's (buffered)."""

    KIND = KINDS["outgoing-body"]

    def __init__(self, sink: BodySink) -> None:
        self.sink = sink
        self.stream_taken = False
        self.finished = False

    def release(self) -> None:
        if not self.finished:
            self.sink.abort()


class OutgoingResponse(HostObject):
    KIND = KINDS["outgoing-response"]

    def __init__(self, headers: Fields) -> None:
        headers.mutable = False
        self.headers = headers
        self.status = 200
        self.body: ResponseBody | None = None


class ResponseOutparam(HostObject):
    KIND = KINDS["response-outparam"]

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange


class _RequestBodySource:
    """An input stream's source: the provider's request body, read on the loop."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    def fetch(self) -> concurrent.futures.Future[bytes]:
        return self._exchange.table.submit(self._exchange.read_body())


class Exchange:
    """One incoming request in flight to a component, and its response's progress."""

    def __init__(
        self,
        table: ResourceTable,
        request: StreamedRequest,
        sink: ResponseSink,
        deadline_s: float,
    ) -> None:
        self.table = table
        self.request = request
        self.scope = CallScope(table.loop, time.monotonic() + deadline_s)
        self.sender = ResponseSender(table.loop, sink)
        # The pump starts when the guest is about to wait on anything.
        self.scope.before_wait = self.sender.release_held
        self.request_error: BodyError | None = None
        self.responded = False  # response-outparam.set was called
        self.error_code: Variant | None = None  # ... with an error instead of a response
        self.body_read = False  # the guest asked for request body bytes

    # -- made on the loop, before the guest runs ----------------------------

    def handles(self) -> tuple[Any, Any]:
        """The ``incoming-request`` and ``response-outparam`` handles for ``handle``."""
        body = IncomingBody(lambda: InputStream(_RequestBodySource(self)))
        table = self.table
        request = table.own(IncomingRequest(self.request, body))
        return request, table.own(ResponseOutparam(self))

    # -- the guest's side (worker thread) ------------------------------------

    def respond(self, response: OutgoingResponse) -> None:
        self.responded = True
        headers = list(response.headers.entries)
        body = response.body
        if body is not None:  # its length was checked when the body was taken
            self.sender.start(response.status, headers, body.length)
            body.bind(self.sender)
            return
        try:
            length = content_length(headers)
        except ValueError as exc:
            self.sender.abort(f"set a response whose {exc}")
            return
        if length and not self._bodiless(response.status):
            self.sender.abort(f"set a response declaring content-length {length} without a body")
            return
        self.sender.start(response.status, headers, length)
        self.sender.finish()  # a response whose body was never taken is empty

    def _bodiless(self, status: int) -> bool:
        """An answer that carries no body whatever its length says (RFC 9110 8.6)."""
        return self.request.method == "HEAD" or bodiless_status(status)

    def fail(self, code: Variant) -> None:
        self.responded = True
        self.error_code = code

    @property
    def finished(self) -> bool:
        return self.sender.finished

    @property
    def aborted(self) -> str | None:
        """Why the response was broken off (None: it was not)."""
        return self.sender.aborted

    @property
    def answered(self) -> bool:
        """The guest answered completely (checked on its worker thread, after ``handle``)."""
        return self.responded and self.error_code is None and self.finished and not self.aborted

    @property
    def replayable(self) -> bool:
        """Nothing went towards the client and no body was read: another instance may serve it."""
        return not self.sender.sent_any and not self.body_read

    async def read_body(self) -> bytes:
        self.body_read = True
        try:
            return await self.request.body.read_chunk()
        except BodyError as exc:
            self.request_error = exc
            raise StreamFailed(IoError(exc.public_message)) from exc

    # -- the loop's side -----------------------------------------------------

    def release(self) -> None:
        """The guest's call returned: send what it held back."""
        self.sender.release()

    async def settle(self, timeout_s: float) -> bool:
        """Wait for what the guest sent to reach the sink; True when all of it did."""
        return await self.sender.settle(timeout_s)

    def close(self) -> None:
        """Cancel what is still pending and release the guest's request handles."""
        self.sender.close()
        self.table.release_scope(self.scope)


def functions(table: ResourceTable) -> Mapping[str, Callable[..., Any]]:
    """The host functions of wasi:http/types (outgoing requests are added by http_outgoing)."""

    def fields(rep: int) -> Fields:
        return table.get(rep, Fields)

    def from_list(_s: Any, entries: list[tuple[str, bytes]]) -> Any:
        for name, value in entries:
            problem = header_problem(name, value)
            if problem is not None:
                return Err(problem)
        return Ok(table.own(Fields([(k.lower(), bytes(v)) for k, v in entries], True)))

    def request(rep: int) -> IncomingRequest:
        return table.get(rep, IncomingRequest)

    def consume_request(_s: Any, rep: int) -> Any:
        req = request(rep)
        body, req.body = req.body, None
        return Err() if body is None else Ok(table.own(body))

    def body_stream(_s: Any, rep: int) -> Any:
        stream = table.get(rep, IncomingBody).stream()
        return Err() if stream is None else Ok(table.own(stream))

    def finish_incoming(_s: Any, rep: int) -> Any:
        table.take(rep, IncomingBody).release()
        return table.own(FutureTrailers())

    def trailers_get(_s: Any, rep: int) -> Any:
        future = table.get(rep, FutureTrailers)
        if future.taken:
            return Err()
        future.taken = True
        return Ok(Ok(None))

    def new_response(_s: Any, headers: int) -> Any:
        return table.own(OutgoingResponse(table.take(headers, Fields)))

    def set_status(_s: Any, rep: int, status: int) -> Any:
        if not 100 <= status <= 999:
            return Err()
        table.get(rep, OutgoingResponse).status = status
        return Ok()

    def response_body(_s: Any, rep: int) -> Any:
        response = table.get(rep, OutgoingResponse)
        if response.body is not None:
            return Err()
        try:
            length = content_length(response.headers.entries)
        except ValueError:
            # Refused as wasmtime refuses it: a body that cannot be framed. The
            # response set without a body then fails with the problem named.
            return Err()
        response.body = ResponseBody(length)
        return Ok(table.own(OutgoingBody(response.body)))

    def body_write(_s: Any, rep: int) -> Any:
        body = table.get(rep, OutgoingBody)
        if body.stream_taken:
            return Err()
        body.stream_taken = True
        return Ok(table.own(OutputStream(body.sink)))

    def body_finish(_s: Any, rep: int, trailers: int | None) -> Any:
        body = table.take(rep, OutgoingBody)
        if trailers is not None:
            table.take(trailers, Fields)  # dropped: the provider cannot send trailers
        body.finished = True
        error = body.sink.finish()
        return OK if error is None else Err(error)

    def set_response(_s: Any, param: int, response: Any) -> None:
        exchange = table.take(param, ResponseOutparam).exchange
        if exchange.responded:
            raise WasiTrap("response-outparam.set called twice")
        if isinstance(response, Ok):
            exchange.respond(table.take(response.value, OutgoingResponse))
        else:
            exchange.fail(response.value)

    def http_error_code(_s: Any, rep: int) -> Variant | None:
        return table.get(rep, IoError).http_code

    def ready_pollable(_s: Any, _rep: int) -> Any:
        return table.own(Pollable(Always()))

    return {
        "http-error-code": http_error_code,
        "[constructor]fields": lambda _s: table.own(Fields([], True)),
        "[static]fields.from-list": from_list,
        "[method]fields.get": lambda _s, rep, name: fields(rep).get(name),
        "[method]fields.has": lambda _s, rep, name: bool(fields(rep).get(name)),
        "[method]fields.set": lambda _s, rep, name, values: fields(rep).change(name, values),
        "[method]fields.delete": lambda _s, rep, name: fields(rep).change(name, None),
        "[method]fields.append": lambda _s, rep, name, value: fields(rep).change(
            name, [value], append=True
        ),
        "[method]fields.entries": lambda _s, rep: list(fields(rep).entries),
        "[method]fields.clone": lambda _s, rep: table.own(Fields(list(fields(rep).entries), True)),
        "[method]incoming-request.method": lambda _s, rep: method_variant(
            request(rep).request.method
        ),
        "[method]incoming-request.path-with-query": lambda _s, rep: (
            request(rep).request.path_with_query
        ),
        "[method]incoming-request.scheme": lambda _s, rep: scheme_variant(
            request(rep).request.scheme
        ),
        "[method]incoming-request.authority": lambda _s, rep: (
            request(rep).request.authority or None
        ),
        "[method]incoming-request.headers": lambda _s, rep: table.own(request(rep).headers.child()),
        "[method]incoming-request.consume": consume_request,
        "[method]incoming-body.stream": body_stream,
        "[static]incoming-body.finish": finish_incoming,
        "[method]future-trailers.subscribe": ready_pollable,
        "[method]future-trailers.get": trailers_get,
        "[constructor]outgoing-response": new_response,
        "[method]outgoing-response.status-code": lambda _s, rep: (
            table.get(rep, OutgoingResponse).status
        ),
        "[method]outgoing-response.set-status-code": set_status,
        "[method]outgoing-response.headers": lambda _s, rep: table.own(
            table.get(rep, OutgoingResponse).headers.child()
        ),
        "[method]outgoing-response.body": response_body,
        "[method]outgoing-body.write": body_write,
        "[static]outgoing-body.finish": body_finish,
        "[static]response-outparam.set": set_response,
        "[method]response-outparam.send-informational": lambda _s, *_a: Err(
            Variant("internal-error", "informational responses are not supported")
        ),
    }
