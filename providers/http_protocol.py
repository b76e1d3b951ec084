"""The HTTP/1.1 connections of the http-server provider: one ``asyncio.Protocol`` each.

``HttpFront`` is the protocol factory a listening socket is served with; each
connection gets an ``HttpConnection``, which parses requests with ``httptools``
(llhttp) and hands each one, in order, to the front's handler with a
``ResponseWriter`` (``providers.http_messages``). Pipelined requests are
answered in order; the connection is kept alive as HTTP/1.1 and 1.0 say
(``Connection: close``, ``keep-alive``). What the handler answers is its
business (``providers.http_server``); this module applies the limits of
``HttpLimits`` (``providers.http_limits``) to what a client can make it hold:

- **connections**: over ``max_connections`` a connection is answered 503 and
  closed as soon as it is accepted (``refused_connections``).
- **heads**: a whole request head within ``header_timeout_s`` (from the
  connection's opening, or, on a kept-alive connection, from the head's first
  byte or the end of the answer before it, whichever is later) and in at most
  ``max_head_bytes``; a request line of at most ``max_line_bytes``, header
  names and values of at most ``max_field_bytes`` each, at most
  ``max_headers`` fields. Otherwise the answer is 408, 431 (size, fields) or
  414 (line), a malformed head (or an HTTP/1.1 one without Host, or any with
  two) gets 400, a version other than 1.0 and 1.1 gets 505, and the connection
  is closed;
  ``rejected_heads`` counts them all.
- **idle keep-alive**: a connection with no request within ``idle_timeout_s``
  of its last answer is closed.
- **bodies**: the socket is read for a body only while the handler waits for
  it (``IncomingBody``): after a head with a body, reading stops until the
  handler asks (it first reserves the body's bytes), and each chunk stops it
  again until it is consumed. A request parsed behind the one being served
  stops reading too, so a connection holds at most about one read buffer.
  A malformed body fails its reader (400 from the handler) and ends the
  connection after the answer; so do chunk lines and trailers (which are not
  read) over twice ``max_head_bytes`` beyond 6 bytes per body byte.
- **lingering**: a body the answer left unread (an early 408/413/503, or a
  handler that ignored it) is read and dropped for up to ``lingering_s``, so
  the client sees the answer rather than a reset; the connection stays open
  only if the body ended in that time and the answer allowed it.

A connection with a ``ConnectionTracker`` (``host.dataplane.connections``) is
told to it on opening and closing; its slot turns IN_REQUEST when a request is
handed to the handler (unless bytes of an earlier answer still wait in the
write buffer: a 503 after them, were they cut, would read as part of them) and
IDLE as the first byte of the answer is written.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import httptools

from providers.http_limits import IDLE, IN_REQUEST, ConnectionTracker, HttpLimits, plain_response
from providers.http_messages import BodyFailure, IncomingBody, IncomingRequest, ResponseWriter

__all__ = ["Handler", "HttpConnection", "HttpFront"]

log = logging.getLogger(__name__)

# Serves one request: answers it through the writer (or leaves it unanswered: 500).
Handler = Callable[[IncomingRequest, ResponseWriter], Awaitable[None]]

_BUSY = plain_response(503, "Service Unavailable", "too many open connections")
_HEAD_TIMEOUT = plain_response(408, "Request Timeout", "request head not received in time")
_HEAD_TOO_LARGE = plain_response(431, "Request Header Fields Too Large", "request head too large")
_LINE_TOO_LONG = plain_response(414, "URI Too Long", "request line too long")
_MALFORMED = plain_response(400, "Bad Request", "malformed request head")
_VERSION = plain_response(505, "HTTP Version Not Supported", "HTTP/1.0 and HTTP/1.1 are served")
_SHUTDOWN_S = 60.0  # what requests in flight get to finish when the server stops
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


class _HeadRefused(Exception):
    """Raised in a parser callback: the head broke a limit (the answer is set)."""


class HttpFront:
    """The protocol factory of a listening socket, and what its connections share."""

    def __init__(
        self, handler: Handler, limits: HttpLimits, tracker: ConnectionTracker | None = None
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.tracker = tracker
        self.open_connections = 0
        self.refused_connections = 0
        self.rejected_heads = 0
        self.connections: set[HttpConnection] = set()

    def __call__(self) -> HttpConnection:
        return HttpConnection(self)

    async def shutdown(self, timeout_s: float = _SHUTDOWN_S) -> None:
        """Close idle connections; let requests in flight finish, then cancel them."""
        busy = [t for c in list(self.connections) if (t := c.close_when_answered()) is not None]
        if busy:
            _, pending = await asyncio.wait(busy, timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for conn in list(self.connections):
            conn.abort()


class HttpConnection(asyncio.Protocol):
    """One client connection: parse, hand over in order, keep alive or close."""

    def __init__(self, front: HttpFront) -> None:
        self._front = front
        self._limits = front.limits
        self.loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._admitted = False
        self._closing = False
        self._parser = httptools.HttpRequestParser(self)
        self.slot = -1  # in the front's ConnectionTracker
        self._sock: Any = None
        # The head being parsed.
        self._head_begun = False
        self._head_bytes = 0
        self._head_refusal = _MALFORMED
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._host: bytes | None = None
        self._length: int | None = None
        self._chunked = False
        self._expect = False
        # The body being parsed (its head is complete, its end not yet seen).
        self._parsing: IncomingBody | None = None
        self._framing = 0  # bytes of it that were not body, less 6 per body byte
        self._queue: collections.deque[IncomingRequest] = collections.deque()
        self._task: asyncio.Task[None] | None = None
        self._last = False  # nothing after the current message is parsed
        self._refuse_after: bytes | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since = 0.0  # loop time the connection last turned idle
        self._reading = True
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- the transport's side --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is no asyncio.Transport
        front = self._front
        if front.open_connections >= self._limits.max_connections:
            front.refused_connections += 1
            transport.write(_BUSY)
            transport.close()
            return
        self._admitted = True
        front.open_connections += 1
        front.connections.add(self)
        self._transport = transport
        if front.tracker is not None:
            self._sock = transport.get_extra_info("socket")
            self.slot = front.tracker.opened(self._sock)
        self._arm_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._admitted:
            return
        self._admitted = False
        front = self._front
        front.open_connections -= 1
        front.connections.discard(self)
        if self.slot >= 0 and front.tracker is not None:
            front.tracker.closed(self.slot, self._sock)  # its socket is still open here
            self.slot = -1
        self._transport = None
        self._cancel_timers()
        gone = BodyFailure("the connection closed")
        if self._parsing is not None:
            self._parsing.fail(gone)
        for request in self._queue:
            if request.body is not None:
                request.body.fail(gone)
        self._queue.clear()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("the client is gone"))

    def eof_received(self) -> bool | None:
        """The client sent all it will: answers in flight still go out, then close."""
        self._last = True
        if self._parsing is not None:
            self._parsing.fail(BodyFailure("the request ended before its body"))
            self._parsing = None
        if self._task is not None:
            return True  # keep the transport open for the answers
        self._cancel_timers()
        return None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._last and self._parsing is None:
            return  # after the connection's last request: dropped
        if self._parsing is None:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._last = True  # no protocol switch here: the request is answered, then close
        except httptools.HttpParserError:
            if not (self._last and self._parsing is None):  # else: data after the last one
                self._malformed()
                return
        if self._parsing is not None:
            self._framing += len(data)  # with the head when it came in this read: 2x
            if self._framing > 2 * self._limits.max_head_bytes:
                self._malformed()  # trailers (or chunk lines) far beyond the body they frame
                return
        if self._parsing is None and self._head_begun and not self._closing:
            if self._head_bytes > self._limits.max_head_bytes:
                if self._task is None:
                    self._refuse_head(_HEAD_TOO_LARGE, "request head too large")
                else:  # behind a request being answered: refused after its answer
                    self._last = True
                    self._refuse_after = _HEAD_TOO_LARGE
            elif self._task is None and self._head_timer is None:
                self._arm_head_deadline()

    # -- the parser's callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_begun = True
        self._url = b""
        self._headers = []
        self._host = None
        self._length = None
        self._chunked = self._expect = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_line_bytes:
            self._head_refusal = _LINE_TOO_LONG
            raise _HeadRefused

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._head_begun:
            return  # a trailer of a chunked body: not read (nor are they sent)
        limits = self._limits
        headers = self._headers
        if (
            len(name) > limits.max_field_bytes
            or len(value) > limits.max_field_bytes
            or len(headers) >= limits.max_headers
        ):
            self._head_refusal = _HEAD_TOO_LARGE
            raise _HeadRefused
        headers.append((name, value))
        low = name.lower()
        if low == b"host":
            if self._host is not None:
                raise _HeadRefused  # RFC 9112 3.2: two Hosts are a 400, not a choice
            self._host = value
        elif low == b"content-length":
            self._length = int(value)
        elif low == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()
        elif low == b"expect":
            self._expect = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        self._head_begun = False
        self._head_bytes = 0
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):  # llhttp also takes 0.9 and 2.0 heads
            self._head_refusal = _VERSION
            raise _HeadRefused
        if self._host is None and version == "1.1":
            raise _HeadRefused  # RFC 9112 3.2: a 1.1 request names its host (400)
        keep_alive = parser.should_keep_alive()
        method = parser.get_method()
        body = None
        if self._chunked or self._length:
            body = IncomingBody(self, self._expect and version == "1.1")
        request = IncomingRequest(
            _METHODS.get(method) or method.decode("latin-1"),
            self._url.decode("latin-1"),
            self._headers,
            self._host.decode("latin-1") if self._host is not None else "",
            version,
            keep_alive,
            self._length,
            body,
        )
        if not keep_alive:
            self._last = True
        self._parsing = body
        self._framing = 0
        if self._task is None and not self._queue:
            self._task = self.loop.create_task(self._serve(request))
        else:
            self._queue.append(request)
        self.update_reading()

    def on_body(self, chunk: bytes) -> None:
        if self._parsing is not None:
            # Bytes of a body that are not body (chunk lines, trailers: httptools keeps a
            # trailer whole until it ends) are bounded: a body byte allows 6 (a 1-byte chunk).
            self._framing -= 7 * len(chunk)
            self._parsing.feed(chunk)

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing.feed_eof()
            self._parsing = None
            self.update_reading()

    # -- serving ---------------------------------------------------------------

    async def _serve(self, request: IncomingRequest) -> None:
        """Answer ``request`` and those queued behind it, in order."""
        try:
            while True:
                keep = await self._serve_one(request)
                if not keep or self._transport is None:
                    self._close()
                    return
                if not self._queue:
                    break
                request = self._queue.popleft()
                self.update_reading()
        finally:
            self._task = None
        if self._refuse_after is not None:
            self._refuse_head(self._refuse_after, "malformed request head")
        elif self._last and self._parsing is None:
            self._close()
        elif self._head_begun:
            self._arm_head_deadline()
        elif self._parsing is None:
            self._idle_since = self.loop.time()
            if self._idle_timer is None:  # else it is armed, and finds out when it fires
                self._idle_timer = self.loop.call_at(
                    self._idle_since + self._limits.idle_timeout_s, self._idle_passed
                )
        self.update_reading()

    async def _serve_one(self, request: IncomingRequest) -> bool:
        """Whether the connection may carry another request after this one."""
        front = self._front
        transport = self._transport
        if self.slot >= 0 and front.tracker is not None and transport is not None:
            if not transport.get_write_buffer_size():
                front.tracker.states[self.slot] = IN_REQUEST
        out = ResponseWriter(self, request)
        try:
            await front.handler(request, out)
        except Exception:
            log.exception("serving %s %s failed", request.method, request.path)
        if not out.finished:
            if out.started:
                out.abort()
                return False
            out.text(500, "internal server error", close=True)
        body = request.body
        if body is not None and not body.eof:
            # A client waiting for "100 Continue" sends no body: nothing to linger for.
            if body.failed or body.expect_continue:
                return False
            if not await body.drain(self._limits.lingering_s):
                return False
        if self._write_paused and out.keep_alive:
            # A client that sends requests and does not read the answers: the next one
            # waits until this answer is on its way, or the write buffer has no bound.
            try:
                async with asyncio.timeout(self._limits.idle_timeout_s):
                    await self.drain()
            except (TimeoutError, ConnectionError):
                self.abort()
                return False
        return out.keep_alive

    def close_when_answered(self) -> asyncio.Task[None] | None:
        """Close now when idle, else after the answers in flight (the task answering)."""
        self._last = True
        if self._task is None:
            self._close()
        return self._task

    # -- what a request's body and answer use (``http_messages.Wire``) -------------

    def update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        parsing = self._parsing
        want = not self._queue and (parsing is None or parsing.wanted)
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def write_interim(self, data: bytes) -> None:
        self.write(data)

    def write_answer(self, data: bytes) -> None:
        if self.slot >= 0 and self._front.tracker is not None:
            self._front.tracker.states[self.slot] = IDLE
        self.write(data)

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def drain(self) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the client is gone")
        if self._write_paused:
            if self._drain_waiter is None or self._drain_waiter.done():
                self._drain_waiter = self.loop.create_future()
            await self._drain_waiter

    def abort(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    # -- ending ----------------------------------------------------------------

    def _malformed(self) -> None:
        """The parser failed: on a body, its reader fails; on a head, 400 (or 414, 431)."""
        self._last = True
        if self._parsing is not None:
            self._parsing.fail(BodyFailure("malformed request body"))
            self._parsing = None
        elif self._task is None:
            self._refuse_head(self._head_refusal, "malformed or oversized request head")
        else:
            self._refuse_after = self._head_refusal

    def _refuse_head(self, answer: bytes, why: str) -> None:
        peer = self._transport.get_extra_info("peername") if self._transport else None
        log.info("closing the HTTP connection from %s: %s", peer, why)
        self._front.rejected_heads += 1
        self._last = True
        self.write(answer)
        self._close()

    def _arm_head_deadline(self) -> None:
        self._head_timer = self.loop.call_later(
            self._limits.header_timeout_s, self._head_deadline_passed
        )

    def _head_deadline_passed(self) -> None:
        self._head_timer = None
        if self._task is None and self._parsing is None and not self._closing:
            timeout = self._limits.header_timeout_s
            self._refuse_head(_HEAD_TIMEOUT, f"no whole request head within {timeout} s")

    def _idle_passed(self) -> None:
        # One timer per idle period at most, not one per request: it stays armed while
        # requests come and go, and checks when it fires whether the connection was idle
        # long enough (a busy connection re-arms it when it next turns idle).
        self._idle_timer = None
        if self._task is not None or self._parsing is not None or self._head_begun:
            return
        deadline = self._idle_since + self._limits.idle_timeout_s
        if self.loop.time() >= deadline:
            self._close()
        else:
            self._idle_timer = self.loop.call_at(deadline, self._idle_passed)

    def _close(self) -> None:
        """Close once what was written is sent."""
        self._cancel_timers()
        if not self._closing and self._transport is not None:
            self._closing = True
            self._transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._idle_timer = None
