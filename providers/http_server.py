"""The http-server provider: incoming HTTP to components via ``wasmlattice:http``.

Routes match on an optional Host header and a path prefix; the most specific
route wins (host-specific before any-host, then the longest prefix). Status
codes the provider produces itself:

- 404 when no route matches,
- 408 when the request head or body did not arrive in time,
- 413 when the body is over ``max_body_bytes``,
- 500 when the component trapped (the body never carries internals),
- 503 when the component is overloaded or stopping, or when the server is busy
  (too many connections, or no room to read one more body: ``providers.http_limits``),
- 504 when the component ran past its deadline.

Every bound on what a client can make the server hold (connections, head and
body timeouts, bytes of bodies read at once) is in ``HttpLimits``
(``providers.http_limits``). The body is read only once its size has been
reserved, and the reservation is held until the component has answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from lattice import tracing
from providers.http_limits import ByteBudget, GuardedServer, HttpLimits

__all__ = [
    "DEFAULT_MAX_BODY",
    "HandlerError",
    "HttpLimits",
    "HttpRequest",
    "HttpResponse",
    "HttpServer",
    "Invoker",
    "Route",
    "RouteTable",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 4 * 2**20


@dataclass
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


@dataclass(frozen=True)
class Route:
    component_id: str
    path_prefix: str = "/"
    host: str | None = None

    def matches(self, host: str, path: str) -> bool:
        if self.host is not None and self.host != host:
            return False
        prefix = self.path_prefix.rstrip("/")
        return path == prefix or path.startswith(prefix + "/") or prefix == ""

    def specificity(self) -> tuple[int, int]:
        return (self.host is not None, len(self.path_prefix.rstrip("/")))


class RouteTable:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, route: Route) -> None:
        self._routes = [
            r for r in self._routes if (r.host, r.path_prefix) != (route.host, route.path_prefix)
        ]
        self._routes.append(route)
        self._routes.sort(key=Route.specificity, reverse=True)

    def remove_component(self, component_id: str) -> None:
        self._routes = [r for r in self._routes if r.component_id != component_id]

    def lookup(self, host: str, path: str) -> Route | None:
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


class _BodyTooLarge(Exception):
    pass


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
    ) -> None:
        self.invoke = invoke
        self.routes = RouteTable()
        self.bind_host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.limits = limits or HttpLimits()
        self.server = GuardedServer(self._handle, self.limits)
        self.bodies = ByteBudget(self.limits.body_buffer_bytes)
        self._runner: web.ServerRunner | None = None
        self.host_id = "local"  # names this host in traces

    async def start(self) -> None:
        self._runner = web.ServerRunner(self.server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind_host, self.port, reuse_address=True)
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
            try:
                body = await self._read_body(request)
            except _BodyTooLarge:
                return _text(413, f"request body over {self.max_body_bytes} bytes", close=True)
            except TimeoutError:
                return _text(408, "request body not received in time", close=True)
            except web.RequestPayloadError:
                return _text(400, "malformed request body", close=True)
            return await self._call(route, request, body)
        finally:
            self.bodies.release(reserved)

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        """The whole body, under the size cap, the between-reads gap and the total time."""
        if not request.body_exists:
            return b""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.limits.body_timeout_s
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(None) as deadline:
            while True:
                deadline.reschedule(min(end, loop.time() + self.limits.body_idle_timeout_s))
                chunk = await request.content.readany()
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise _BodyTooLarge
                chunks.append(chunk)

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
        return web.Response(
            status=response.status, headers=list(response.headers), body=bytes(response.body)
        )
