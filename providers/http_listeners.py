"""Listeners of their own: http-server links that name an ``address``.

wasmCloud's http-server routes three ways: by path, by Host, and by address (the
link's ``address`` config, ``HOST:PORT``, gets a listener of its own). Path and
Host routes live in the host's main ``HttpServer``; an address gets a second
``HttpServer`` on that address, made by the daemon's factory, so it has the same
limits, contracts and tracing as the main one. Routes on it match by path and
Host as on the main one (a link with only an address routes ``/``).

``AddressListeners`` keeps, per address, the server and the routes of each
component on it: ``update`` sets a component's address routes (starting a
listener the first time an address is needed), and a listener no route needs
any more is stopped. An address that cannot be listened on (taken, not local)
raises ``ListenerUnavailable`` naming it and why; the other addresses of the
update still apply.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterable

from providers.http_server import HttpServer, Route

__all__ = ["AddressListeners", "ListenerUnavailable", "parse_address"]

log = logging.getLogger(__name__)

# Listeners of link addresses one host runs beside its main one.
MAX_LISTENERS = 16


class ListenerUnavailable(Exception):
    """An http-server link's address cannot be listened on."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on HTTP address {address}: {reason}")
        self.address = address
        self.reason = reason


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port); ValueError when malformed."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"HTTP address {address!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


# (bind host, port) -> a server not yet started on it, configured as the main one.
ServerFactory = Callable[[str, int], HttpServer]


class AddressListeners:
    """The listeners of address routes on one host."""

    def __init__(self, make: ServerFactory, max_listeners: int = MAX_LISTENERS) -> None:
        self._make = make
        # Whoever writes specs picks addresses: each listener holds a port and up to
        # its connection cap, so a host serves only so many.
        self._max = max_listeners
        self._servers: dict[tuple[str, int], HttpServer] = {}
        # component -> its address routes
        self._routes: dict[str, tuple[tuple[tuple[str, int], Route], ...]] = {}

    @property
    def servers(self) -> dict[tuple[str, int], HttpServer]:
        return dict(self._servers)

    async def update(self, component_id: str, routes: Iterable[tuple[str, Route]]) -> None:
        """The component's routes on listeners of their own are now ``routes``."""
        wanted: list[tuple[tuple[str, int], Route]] = []
        problems: list[ListenerUnavailable] = []
        for address, route in routes:
            try:
                key = parse_address(address)
            except ValueError as exc:
                problems.append(ListenerUnavailable(address, str(exc)))
                continue
            wanted.append((key, route))
        self._unroute(component_id)
        kept = []
        for key, route in wanted:
            server = self._servers.get(key)
            if server is None:
                try:
                    server = await self._listen(key)
                except ListenerUnavailable as exc:
                    problems.append(exc)
                    continue
            server.routes.add(route)
            kept.append((key, route))
        self._routes[component_id] = tuple(kept)
        await self._stop_unused()
        if problems:
            raise problems[0]

    async def remove_component(self, component_id: str) -> None:
        self._unroute(component_id)
        self._routes.pop(component_id, None)
        await self._stop_unused()

    async def stop(self) -> None:
        """Stop every listener; idempotent."""
        servers, self._servers = self._servers, {}
        self._routes.clear()
        for server in servers.values():
            await server.stop()

    def _unroute(self, component_id: str) -> None:
        for key, _route in self._routes.get(component_id, ()):
            server = self._servers.get(key)
            if server is not None:
                server.routes.remove_component(component_id)

    async def _listen(self, key: tuple[str, int]) -> HttpServer:
        if len(self._servers) >= self._max:
            raise ListenerUnavailable(
                _shown(key), f"this host serves at most {self._max} link addresses"
            )
        host, port = key
        server = self._make(host, port)
        try:
            await server.start()
        except OSError as exc:
            await server.stop()
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else str(exc)
            raise ListenerUnavailable(_shown(key), reason) from exc
        log.info("listening for HTTP on %s (an http-server link's address)", server.url)
        self._servers[key] = server
        return server

    async def _stop_unused(self) -> None:
        needed = {key for routes in self._routes.values() for key, _ in routes}
        for key in [k for k in self._servers if k not in needed]:
            server = self._servers.pop(key)
            await server.stop()
            log.info("stopped the HTTP listener on %s (no link needs it)", _shown(key))


def _shown(key: tuple[str, int]) -> str:
    host, port = key
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
