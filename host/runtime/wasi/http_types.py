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
  order (a lock on the event loop keeps the order of writes; writes made before
  ``set`` wait for it, and count against the stream's write budget meanwhile);
- ``outgoing-body.finish`` ends the response; dropping the body unfinished
  aborts it (the client sees a truncated response, as the spec asks);
- sends are held back while the guest runs (``Exchange``): a response that is
  whole when the call returns goes to the sink in one piece
  (``ResponseSink.complete``: one write, with its length), with no pump.

Header rules: names are HTTP tokens, values carry no CR, LF or NUL, and the
connection-level names (``connection``, ``transfer-encoding``...) are
forbidden. Headers a request or response hands out are immutable children.
Trailers: the provider (providers.http_protocol) neither reads nor sends HTTP/1.1 trailers, so
incoming trailers are always none and outgoing ones are dropped.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from host.runtime import inline
from host.runtime.wasi.io import Always, InputStream, IoError, OutputStream, Pollable, StreamFailed
from host.runtime.wasi.table import KINDS, CallScope, HostObject, ResourceTable, WasiTrap
from host.runtime.wasi.values import Err, Ok, Variant
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

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
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
    if value is not None and any(c in value for c in b"\r\n\0"):
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


class OutgoingBody(HostObject):
    """A body the guest writes: a response's (to the exchange) or a request's (buffered)."""

    KIND = KINDS["outgoing-body"]

    def __init__(self, sink: Any) -> None:
        self.sink = sink  # _ResponseBody, or a request body buffer (http_outgoing)
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
        self.body: _ResponseBody | None = None


class ResponseOutparam(HostObject):
    KIND = KINDS["response-outparam"]

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange


class _ResponseBody:
    """The sink of a response body: chunks wait here until the response is set."""

    def __init__(self) -> None:
        self._exchange: Exchange | None = None
        self._held: list[tuple[bytes, concurrent.futures.Future[None]]] = []
        self._finish_held = False
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> concurrent.futures.Future[None] | None:
        with self._lock:
            if self._exchange is not None:
                return self._exchange.write(chunk)
            held: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._held.append((chunk, held))
            return held

    def finish(self) -> None:
        with self._lock:
            if self._exchange is None:
                self._finish_held = True
                return
        self._exchange.finish()

    def abort(self) -> None:
        exchange = self._exchange
        if exchange is not None:
            exchange.abort("the component dropped the response body without finishing it")

    def bind(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchange = exchange
            held, self._held = self._held, []
            for chunk, waiting in held:
                sent = exchange.write(chunk)
                if sent is None:
                    waiting.set_result(None)
                else:
                    _chain(sent, waiting)
            if self._finish_held:
                exchange.finish()


def _chain(
    source: concurrent.futures.Future[None], target: concurrent.futures.Future[None]
) -> None:
    """Complete ``target`` as ``source`` completes."""

    def copy(done: concurrent.futures.Future[None]) -> None:
        exc = None if done.cancelled() else done.exception()
        if done.cancelled():
            target.cancel()
        elif exc is not None:
            target.set_exception(exc)
        else:
            target.set_result(None)

    source.add_done_callback(copy)


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
        self.sink = sink
        self.scope = CallScope(table.loop, time.monotonic() + deadline_s)
        self.request_error: BodyError | None = None
        self.responded = False  # response-outparam.set was called
        self.error_code: Variant | None = None  # ... with an error instead of a response
        self.aborted: str | None = None
        self.finished = False
        self.body_read = False  # the guest asked for request body bytes
        # What the guest sends, in order, until the loop's pump takes it. While the
        # guest runs, the loop is not woken for it (a wake-up mid-call makes the loop
        # and the guest fight over the GIL): the pump starts when the call returns
        # (``release``), when the guest is about to wait on anything
        # (``scope.before_wait``), or once _HOLD_BYTES are queued, so a long body
        # still streams out chunk by chunk. A response made at once costs no hop.
        self._outbox: collections.deque[_Send] = collections.deque()
        self._holding = True
        self._held_bytes = 0
        self.scope.before_wait = self._release_held
        self._lock = threading.Lock()
        self._pump_due = False  # a pump is scheduled or running
        self._pump: asyncio.Task[None] | None = None
        self._sent_any = False
        self._send_failed = False
        self._head_failed = False

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
        headers = [(k, v) for k, v in response.headers.entries]
        self._send(_START, (response.status, headers))
        if response.body is None:
            self.finish()  # a response whose body was never taken is empty
        else:
            response.body.bind(self)

    def fail(self, code: Variant) -> None:
        self.responded = True
        self.error_code = code

    def write(self, chunk: bytes) -> concurrent.futures.Future[None] | None:
        return self._send(_WRITE, chunk)

    def finish(self) -> None:
        self.finished = True
        self._send(_FINISH, None)

    def abort(self, reason: str) -> None:
        if not self.finished:
            self.aborted = reason

    @property
    def answered(self) -> bool:
        """The guest answered completely (checked on its worker thread, after ``handle``)."""
        return self.responded and self.error_code is None and self.finished and not self.aborted

    @property
    def replayable(self) -> bool:
        """Nothing went towards the client and no body was read: another instance may serve it."""
        return not self._sent_any and not self.body_read

    def _send(self, op: int, arg: Any) -> concurrent.futures.Future[None] | None:
        """Queue ``op`` for the client; the loop's pump sends queued ops in order.

        The future completes when the op reached the sink. An op held back gets
        none (None: done, for the output stream): held bytes stay under the write
        budget, and a failure to send them fails the exchange as any other.
        """
        with self._lock:
            self._sent_any = True
            if self._holding:
                if op == _WRITE:
                    self._held_bytes += len(arg)
                if self._held_bytes < _HOLD_BYTES:
                    self._outbox.append((op, arg, None))
                    return None
                # Sending starts here: a call on the event loop's thread stops first.
                inline.refuse("a response longer than the host holds back")
                self._holding = False
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._outbox.append((op, arg, done))
            schedule, self._pump_due = not self._pump_due, True
        if schedule:
            self.table.loop.call_soon_threadsafe(self._start_pump)
        return done

    def _release_held(self) -> None:
        """Stop holding sends back; start the pump for what is queued (guest's thread)."""
        with self._lock:
            if not self._holding:
                return
            self._holding = False
            schedule = bool(self._outbox) and not self._pump_due
            self._pump_due = self._pump_due or schedule
        if schedule:
            self.table.loop.call_soon_threadsafe(self._start_pump)

    def release(self) -> None:
        """The guest's call returned: send what it held back (on the loop)."""
        with self._lock:
            self._holding = False
            whole = None if self._pump_due else self._whole_response()
            schedule = whole is None and bool(self._outbox) and not self._pump_due
            self._pump_due = self._pump_due or schedule
        if whole is not None:
            self._complete(*whole)
        elif schedule:
            self._start_pump()

    def _whole_response(self) -> tuple[int, list[tuple[str, bytes]], list[_Send]] | None:
        """The held sends when they are a whole response, nothing of it sent yet
        (head, chunks, end; a length header, if any, matching the body); taken out."""
        outbox = self._outbox
        if len(outbox) < 2 or outbox[0][0] != _START or outbox[-1][0] != _FINISH:
            return None
        sends = list(outbox)
        if any(op != _WRITE for op, _, _ in sends[1:-1]):
            return None
        status, headers = sends[0][1]
        size = sum(len(chunk) for _, chunk, _ in sends[1:-1])
        if any(k == "content-length" and v.strip() != str(size).encode() for k, v in headers):
            return None
        outbox.clear()
        return status, headers, sends

    def _complete(self, status: int, headers: list[tuple[str, bytes]], sends: list[_Send]) -> None:
        """Hand a whole response to the sink at once: no pump, one write to the client."""
        body = b"".join(chunk for _, chunk, _ in sends[1:-1])
        try:
            self.sink.complete(status, headers, body)
        except Exception as exc:
            self._send_failed = True
            for _, _, done in sends:
                if done is not None and not done.cancelled():
                    done.set_exception(exc)
            return
        for _, _, done in sends:
            if done is not None and not done.cancelled():
                done.set_result(None)

    # -- the loop's side -----------------------------------------------------

    def _start_pump(self) -> None:
        self._pump = asyncio.ensure_future(self._run_pump())

    async def _run_pump(self) -> None:
        while True:
            with self._lock:
                if not self._outbox:
                    self._pump_due = False
                    return
                op, arg, done = self._outbox.popleft()
            if done is not None and done.cancelled():
                continue
            try:
                await self._deliver(op, arg)
            except BaseException as exc:
                self._send_failed = True
                if done is not None and not done.cancelled():
                    done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                if done is not None and not done.cancelled():
                    done.set_result(None)

    async def _deliver(self, op: int, arg: Any) -> None:
        if op == _START:
            try:
                await self.sink.start(*arg)
            except BaseException:
                self._head_failed = True
                raise
            return
        if self._head_failed:
            raise StreamFailed(IoError("the client is gone"))
        if op == _WRITE:
            try:
                await self.sink.write(arg)
            except (ConnectionError, RuntimeError) as exc:
                raise StreamFailed(IoError(f"the client is gone: {exc}")) from exc
        else:
            await self.sink.finish()

    async def read_body(self) -> bytes:
        self.body_read = True
        try:
            return await self.request.body.read_chunk()
        except BodyError as exc:
            self.request_error = exc
            raise StreamFailed(IoError(exc.public_message)) from exc

    async def settle(self, timeout_s: float) -> bool:
        """Wait for what the guest sent to reach the sink; True when all of it did."""
        # ``release`` started the pump, or it was scheduled before the guest's call
        # returned (both hops are call_soon_threadsafe from the worker, which keeps
        # their order).
        pump = self._pump
        if pump is not None and not pump.done():
            done, _ = await asyncio.wait([pump], timeout=timeout_s)
            if not done:
                return False
        return not self._outbox and not self._send_failed and self._sent_any

    def close(self) -> None:
        """Cancel what is still pending and release the guest's request handles."""
        with self._lock:
            left, self._outbox = list(self._outbox), collections.deque()
        for _op, _arg, done in left:
            if done is not None:
                done.cancel()
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
        self.table.release_scope(self.scope)


# What the pump sends: the head, a body chunk, the end.
_START, _WRITE, _FINISH = 0, 1, 2
# Body bytes held back while the guest runs without waiting (see Exchange).
_HOLD_BYTES = 32 * 1024
_Send = tuple[int, Any, concurrent.futures.Future[None] | None]


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
        response.body = _ResponseBody()
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
        body.sink.finish()
        return Ok()

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
