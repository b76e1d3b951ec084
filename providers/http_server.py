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
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from lattice import tracing
from providers.http_limits import ByteBudget, ConnectionTracker, GuardedServer, HttpLimits

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
# Connection-level response headers: the server sets its own.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "te"})


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

    def __init__(self, request: web.BaseRequest, max_bytes: int, limits: HttpLimits) -> None:
        self._request = request
        self._max_bytes = max_bytes
        self._limits = limits
        self._loop = asyncio.get_running_loop()
        self._end = self._loop.time() + limits.body_timeout_s
        self._size = 0

    async def read_chunk(self) -> bytes:
        """The next chunk, b"" at the end."""
        if not self._request.body_exists:
            return b""
        idle = self._loop.time() + self._limits.body_idle_timeout_s
        try:
            async with asyncio.timeout_at(min(self._end, idle)):
                chunk = await self._request.content.readany()
        except TimeoutError:
            raise BodyError(408, "request body not received in time") from None
        except web.RequestPayloadError:
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


class _ResponseWriter:
    """The aiohttp side of a ``ResponseSink``."""

    def __init__(self, request: web.BaseRequest) -> None:
        self._request = request
        self.response: web.StreamResponse | None = None
        self.finished = False

    async def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        response = web.StreamResponse(status=status)
        _add_headers(response, headers)
        self.response = response
        await response.prepare(self._request)

    def complete(self, status: int, headers: list[tuple[str, bytes]], body: bytes) -> None:
        # Returned from the handler, aiohttp writes head and body in one go (a streamed
        # response writes the head, each chunk and the end separately).
        response = web.Response(status=status, body=body)
        _add_headers(response, headers)
        self.response = response
        self.finished = True

    async def write(self, chunk: bytes) -> None:
        assert self.response is not None
        await self.response.write(chunk)

    async def finish(self) -> None:
        assert self.response is not None
        await self.response.write_eof()
        self.finished = True

    def abort(self) -> None:
        """End the connection mid-response: the client must not take it as complete."""
        transport = self._request.transport
        if transport is not None:
            transport.abort()


def _add_headers(response: web.StreamResponse, headers: list[tuple[str, bytes]]) -> None:
    for name, value in headers:
        if name.lower() not in _HOP_BY_HOP:
            response.headers.add(name, value.decode("latin-1"))


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


def _text(status: int, message: str, *, close: bool = False) -> web.Response:
    response = web.Response(status=status, text=message + "\n")
    if close:
        # The rest of the body is not read: the connection cannot carry another request.
        response.force_close()
    return response


class HttpServer:
    """One listening socket serving every routed component on this host.

    Made inside the event loop that serves it (aiohttp's server binds to it).
    ``server`` (connections) and ``bodies`` (the body byte budget) keep counters
    of what the limits turned away.
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
        reuse_port: bool = False,
        tracker: ConnectionTracker | None = None,
    ) -> None:
        self.invoke = invoke
        self.exchanges = exchanges
        self.routes = RouteTable()
        self.bind_host = host
        self.port = port
        # SO_REUSEPORT: the processes of one host all listen on its port (host.dataplane).
        self.reuse_port = reuse_port
        self.max_body_bytes = max_body_bytes
        self.limits = limits or HttpLimits()
        # Told of every connection and request phase (providers.http_limits): a data-plane
        # member's, so the daemon can answer its requests should it die (host.dataplane).
        self.server = GuardedServer(self._handle, self.limits, tracker)
        self.bodies = ByteBudget(self.limits.body_buffer_bytes)
        self._runner: web.ServerRunner | None = None
        self.host_id = "local"  # names this host in traces

    async def start(self) -> None:
        self._runner = web.ServerRunner(self.server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.bind_host,
            self.port,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://{self.bind_host}:{self.port}"

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        host = (request.host or "").split(":", 1)[0]
        route = self.routes.lookup(host, request.path)
        if route is None:
            return _text(404, f"no component is routed at {request.path}")
        stream = self.exchanges(route.component_id) if self.exchanges is not None else None
        if stream is None and not request.body_exists:
            # Most requests (GETs) carry no body: nothing to reserve or read, so no
            # reservation and no RequestBody per request on the whole-request path.
            return await self._call(route, request, b"")
        length = request.content_length
        if length is not None and length > self.max_body_bytes:
            return _text(413, f"request body over {self.max_body_bytes} bytes", close=True)
        reserved = 0
        if request.body_exists and length != 0:
            # Reserve before reading: until then aiohttp stops reading the socket.
            wanted = self.max_body_bytes if length is None else length
            granted = await self.bodies.acquire(wanted, self.limits.body_wait_s)
            if granted is None:
                response = _text(503, "the server is busy, try again", close=True)
                response.headers["Retry-After"] = "1"
                return response
            reserved = granted
        try:
            body = RequestBody(request, self.max_body_bytes, self.limits)
            if stream is not None:
                return await self._stream(request, body, stream)
            try:
                whole = await body.read_all()
            except BodyError as exc:
                return _text(exc.status, exc.public_message, close=True)
            return await self._call(route, request, whole)
        finally:
            self.bodies.release(reserved)

    async def _stream(
        self, request: web.BaseRequest, body: RequestBody, handler: StreamHandler
    ) -> web.StreamResponse:
        """Serve a ``wasi:http`` component: the body streams in, the response out."""
        streamed = StreamedRequest(
            method=request.method,
            scheme=request.scheme,
            authority=request.host or "",
            path_with_query=request.raw_path,
            headers=[(k.decode("latin-1"), v) for k, v in request.raw_headers],
            body=body,
        )
        writer = _ResponseWriter(request)
        with tracing.http_span(request.method, request.path, request.headers, self.host_id):
            try:
                await handler(streamed, writer)
            except HandlerError as exc:
                log.info("%s %s -> %s: %s", request.method, request.path, exc.status, exc)
                if writer.response is not None:
                    writer.abort()
                    return writer.response
                return _text(exc.status, exc.public_message, close=exc.status in (400, 408, 413))
        if writer.response is None or not writer.finished:
            return _text(500, "the component failed")
        return writer.response

    async def _call(self, route: Route, request: web.BaseRequest, body: bytes) -> web.Response:
        call = HttpRequest(
            method=request.method,
            path=request.path,
            query=request.query_string,
            headers=list(request.headers.items()),
            body=body,
        )
        with tracing.http_span(request.method, request.path, request.headers, self.host_id):
            try:
                response = await self.invoke(route.component_id, call)
            except HandlerError as exc:
                log.info("%s %s -> %s: %s", request.method, request.path, exc.status, exc)
                return _text(exc.status, exc.public_message)
        # CIMultiDict copies the header pairs itself: no list() of them first.
        return web.Response(
            status=response.status, headers=response.headers, body=bytes(response.body)
        )
