"""The http-server provider: incoming HTTP to components.

Two contracts reach a component:

- the project's own ``wasmlattice:http/incoming-handler``: one call with the
  whole request, answered with the whole response (``Invoker``);
- the standard ``wasi:http/incoming-handler`` (any 0.2.x): a streamed exchange.
  The server hands over a ``StreamedRequest`` whose body the component reads
  chunk by chunk (``RequestBody``), and a ``ResponseSink`` the component's
  status, headers and body chunks go to as it produces them
  (``StreamHandler``). ``exchanges`` tells which components take it.

Routes match on an optional Host header and a path prefix; the most specific
route wins (host-specific before any-host, then the longest prefix). Status
codes the provider produces itself:

- 404 when no route matches,
- 408 when the request head or body did not arrive in time,
- 400 when the request body is malformed,
- 413 when the body is over ``max_body_bytes``,
- 500 when the component trapped (the body never carries internals),
- 503 when the component is overloaded or stopping, or when the server is busy
  (too many connections, or no room to read one more body: ``providers.http_limits``),
- 504 when the component ran past its deadline.

Every bound on what a client can make the server hold (connections, head and
body timeouts, bytes of bodies read at once) is in ``HttpLimits``
(``providers.http_limits``). The body is read only once its size has been
reserved, and the reservation is held until the component has answered. A
streamed exchange that fails after its response started cannot change the
status any more: the connection is closed, so the client sees a truncated
response rather than a complete-looking one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from lattice import tracing
from providers.http_accept import BACKLOG, Acceptor, HandOff, listening_sockets
from providers.http_limits import ByteBudget, ConnectionTracker, HttpLimits
from providers.http_messages import BodyFailure, IncomingBody, IncomingRequest, ResponseWriter
from providers.http_protocol import HttpFront

__all__ = [
    "DEFAULT_MAX_BODY",
    "BodyError",
    "ExchangeLookup",
    "HandlerError",
    "HttpLimits",
    "HttpRequest",
    "HttpResponse",
    "HttpServer",
    "Invoker",
    "RequestBody",
    "ResponseSink",
    "Route",
    "RouteTable",
    "StreamHandler",
    "StreamedRequest",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 4 * 2**20


@dataclass(slots=True)
class HttpRequest:
    """The ``request`` record of the handler contract (field names match the WIT)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class HttpResponse:
    """The ``response`` record of the handler contract."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class HandlerError(Exception):
    """Raised by an invoker; carries the status and a body safe to show clients."""

    def __init__(self, status: int, public_message: str, detail: str = "") -> None:
        super().__init__(detail or public_message)
        self.status = status
        self.public_message = public_message


Invoker = Callable[[str, HttpRequest], Awaitable[HttpResponse]]


class BodyError(Exception):
    """The request body broke a limit or the protocol; ``status`` answers it."""

    def __init__(self, status: int, public_message: str) -> None:
        super().__init__(public_message)
        self.status = status
        self.public_message = public_message


class RequestBody:
    """A request body read chunk by chunk: the size cap, the gap between reads
    and the total time all hold (``BodyError`` 413, 408, 400)."""

    def __init__(self, body: IncomingBody | None, max_bytes: int, limits: HttpLimits) -> None:
        self._body = body
        self._max_bytes = max_bytes
        self._limits = limits
        self._loop = asyncio.get_running_loop()
        self._end = self._loop.time() + limits.body_timeout_s
        self._size = 0

    async def read_chunk(self) -> bytes:
        """The next chunk, b"" at the end."""
        if self._body is None:
            return b""
        idle = self._loop.time() + self._limits.body_idle_timeout_s
        try:
            async with asyncio.timeout_at(min(self._end, idle)):
                chunk = await self._body.readany()
        except TimeoutError:
            raise BodyError(408, "request body not received in time") from None
        except BodyFailure:
            raise BodyError(400, "malformed request body") from None
        self._size += len(chunk)
        if self._size > self._max_bytes:
            raise BodyError(413, f"request body over {self._max_bytes} bytes")
        return chunk

    async def read_all(self) -> bytes:
        chunks = []
        while chunk := await self.read_chunk():
            chunks.append(chunk)
        return b"".join(chunks)


@dataclass
class StreamedRequest:
    """A request as a ``wasi:http`` component sees it; the body is read as it arrives."""

    method: str
    scheme: str
    authority: str
    path_with_query: str
    headers: list[tuple[str, bytes]]
    body: RequestBody


class ResponseSink(Protocol):
    """Where a streamed response goes: ``start`` once, then ``write``s, then ``finish``;
    or, for a response complete before anything was sent, ``complete`` alone."""

    async def start(self, status: int, headers: list[tuple[str, bytes]]) -> None: ...

    def complete(self, status: int, headers: list[tuple[str, bytes]], body: bytes) -> None:
        """The whole response at once (sent with its length, in one write)."""
        ...

    async def write(self, chunk: bytes) -> None: ...

    async def finish(self) -> None: ...


# Serves one streamed exchange; raises HandlerError when it fails.
StreamHandler = Callable[[StreamedRequest, ResponseSink], Awaitable[None]]
# The streamed handler of a component, or None when it takes the whole-request contract.
ExchangeLookup = Callable[[str], StreamHandler | None]


@dataclass(frozen=True)
class Route:
    component_id: str
    path_prefix: str = "/"
    host: str | None = None

    # Derived once per route, not on every request (cached in the instance's __dict__:
    # not fields, so neither compared nor sent over the wire).
    @functools.cached_property
    def _prefix(self) -> str:
        return self.path_prefix.rstrip("/")

    @functools.cached_property
    def _below(self) -> str:
        return self._prefix + "/"

    def matches(self, host: str, path: str) -> bool:
        if self.host is not None and self.host != host:
            return False
        prefix = self._prefix
        return not prefix or path == prefix or path.startswith(self._below)

    def specificity(self) -> tuple[int, int]:
        return (self.host is not None, len(self._prefix))


class RouteTable:
    def __init__(self) -> None:
        self._routes: list[Route] = []  # most specific first

    def add(self, route: Route) -> None:
        self._routes = [
            r for r in self._routes if (r.host, r.path_prefix) != (route.host, route.path_prefix)
        ]
        self._routes.append(route)
        self._routes.sort(key=Route.specificity, reverse=True)

    def remove_component(self, component_id: str) -> None:
        self._routes = [r for r in self._routes if r.component_id != component_id]

    def lookup(self, host: str, path: str) -> Route | None:
        """The most specific route for a request."""
        for route in self._routes:
            if route.matches(host, path):
                return route
        return None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._routes))


class _HeaderView(Mapping[str, str]):
    """Raw request headers as a mapping, decoded only if looked at (tracing is off mostly)."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._dict: dict[str, str] | None = None

    def _decoded(self) -> dict[str, str]:
        if self._dict is None:
            self._dict = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self._raw}
        return self._dict

    def __getitem__(self, name: str) -> str:
        return self._decoded()[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._raw)


class HttpServer:
    """One listening socket serving every routed component on this host.

    ``server`` (the connections: ``providers.http_protocol``) and ``bodies``
    (the body byte budget) keep counters of what the limits turned away.
    """

    def __init__(
        self,
        invoke: Invoker,
        host: str = "127.0.0.1",
        port: int = 8080,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        limits: HttpLimits | None = None,
        *,
        exchanges: ExchangeLookup | None = None,
        accept_here: bool = False,
        tracker: ConnectionTracker | None = None,
    ) -> None:
        self.invoke = invoke
        self.exchanges = exchanges
        self.routes = RouteTable()
        self.bind_host = host
        self.port = port
        # Accept in Python (providers.http_accept), offering each connection to
        # ``hand_off``: the daemon of a host with data-plane members (host.dataplane).
        self.accept_here = accept_here
        self.hand_off: HandOff | None = None
        self.max_body_bytes = max_body_bytes
        self.limits = limits or HttpLimits()
        # Told of every connection and request phase (providers.http_limits): a data-plane
        # member's, so the daemon can answer its requests should it die (host.dataplane).
        self.server = HttpFront(self._handle, self.limits, tracker)
        self.bodies = ByteBudget(self.limits.body_buffer_bytes)
        self._listener: asyncio.Server | None = None
        self._acceptor: Acceptor | None = None
        self._adopting: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.host_id = "local"  # names this host in traces

    async def start(self) -> None:
        if self.accept_here:
            sockets = await listening_sockets(self.bind_host, self.port)
            self._acceptor = Acceptor(sockets, self._accepted)
            port = sockets[0].getsockname()[1]
        else:
            loop = asyncio.get_running_loop()
            self._listener = await loop.create_server(
                self.server, self.bind_host, self.port, reuse_address=True, backlog=BACKLOG
            )
            port = self._listener.sockets[0].getsockname()[1]
        if self.port == 0:
            self.port = port

    @property
    def load(self) -> int:
        """Connections this server holds open, or is about to."""
        return self.server.open_connections + len(self._adopting)

    def _accepted(self, conn: socket.socket) -> None:
        if self.hand_off is None or not self.hand_off(conn, self.load):
            self.adopt(conn)

    def adopt(self, conn: socket.socket) -> None:
        """Serve ``conn``, accepted elsewhere, as a connection of this server's own."""
        task = asyncio.get_running_loop().create_task(self._adopt(conn))
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def _adopt(self, conn: socket.socket) -> None:
        try:
            await self.serve_accepted(conn)
        except Exception as exc:
            log.warning("an accepted connection could not be served: %s", exc)
            conn.close()

    async def serve_accepted(self, conn: socket.socket) -> None:
        """``adopt``, done once the server has the connection; raises if it cannot have it."""
        if self._stopping:
            raise ConnectionRefusedError("the HTTP server is stopping")
        conn.setblocking(False)
        with contextlib.suppress(OSError):  # answers are one write each: send them at once
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.get_running_loop().connect_accepted_socket(self.server, conn)

    async def stop(self) -> None:
        """Stop listening; close idle connections, let requests in flight finish."""
        self._stopping = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        if self._adopting:
            await asyncio.wait(self._adopting)
        await self.server.shutdown()
        if listener is not None:
            await listener.wait_closed()

    @property
    def url(self) -> str:
        return f"http://{self.bind_host}:{self.port}"

    async def _handle(self, request: IncomingRequest, out: ResponseWriter) -> None:
        route = self.routes.lookup(request.host.split(":", 1)[0], request.path)
        if route is None:
            out.text(404, f"no component is routed at {request.path}")
            return
        stream = self.exchanges(route.component_id) if self.exchanges is not None else None
        if stream is None and request.body is None:
            # Most requests (GETs) carry no body: nothing to reserve or read, so no
            # reservation and no RequestBody per request on the whole-request path.
            await self._call(route, request, b"", out)
            return
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            out.text(413, f"request body over {self.max_body_bytes} bytes", close=True)
            return
        reserved = 0
        if request.body is not None:
            # Reserve before reading: until then the connection stops reading the socket.
            wanted = self.max_body_bytes if length is None else length
            granted = await self.bodies.acquire(wanted, self.limits.body_wait_s)
            if granted is None:
                out.text(503, "the server is busy, try again", close=True, retry=True)
                return
            reserved = granted
        try:
            body = RequestBody(request.body, self.max_body_bytes, self.limits)
            if stream is not None:
                await self._stream(request, body, stream, out)
                return
            try:
                whole = await body.read_all()
            except BodyError as exc:
                out.text(exc.status, exc.public_message, close=True)
                return
            await self._call(route, request, whole, out)
        finally:
            self.bodies.release(reserved)

    async def _stream(
        self,
        request: IncomingRequest,
        body: RequestBody,
        handler: StreamHandler,
        out: ResponseWriter,
    ) -> None:
        """Serve a ``wasi:http`` component: the body streams in, the response out."""
        streamed = StreamedRequest(
            method=request.method,
            scheme="http",
            authority=request.host,
            path_with_query=request.target,
            headers=[(k.decode("latin-1"), v) for k, v in request.headers],
            body=body,
        )
        view = _HeaderView(request.headers)
        with tracing.http_span(request.method, request.path, view, self.host_id):
            try:
                await handler(streamed, out)
            except HandlerError as exc:
                log.info("%s %s -> %s: %s", request.method, request.path, exc.status, exc)
                if out.started:
                    out.abort()
                else:
                    out.text(exc.status, exc.public_message, close=exc.status in (400, 408, 413))
                return
        if not out.finished:
            if out.started:
                out.abort()
            else:
                out.text(500, "the component failed")

    async def _call(
        self, route: Route, request: IncomingRequest, body: bytes, out: ResponseWriter
    ) -> None:
        headers = request.text_headers()
        call = HttpRequest(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=headers,
            body=body,
        )
        view = _HeaderView(request.headers)
        with tracing.http_span(request.method, request.path, view, self.host_id):
            try:
                response = await self.invoke(route.component_id, call)
            except HandlerError as exc:
                log.info("%s %s -> %s: %s", request.method, request.path, exc.status, exc)
                out.text(exc.status, exc.public_message)
                return
        out.send(response.status, response.headers, bytes(response.body))
