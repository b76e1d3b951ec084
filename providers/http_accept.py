"""Accepting HTTP connections in Python, so that each can be served where it is best served.

uvloop's listener (``loop.create_server``) accepts in C and serves every
connection in its own process. A host with data-plane members
(``host.dataplane``) accepts in its daemon instead, with an ``Acceptor``, and
offers each connection to a ``HandOff``, which may give it to the member with
the fewest connections; what it declines is served by the daemon. Per
connection that costs an ``accept()`` from Python and, when handed over, one
``sendmsg``: nothing per request.

Listening follows ``loop.create_server``: every address the host name
resolves to, ``SO_REUSEADDR``, IPv6 sockets IPv6 only. An accept that fails
for want of descriptors or memory pauses accepting for ``PAUSE_S`` (the
backlog holds new connections meanwhile) instead of spinning on a listener
that stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

__all__ = ["Acceptor", "HandOff", "listening_sockets"]

log = logging.getLogger(__name__)

BACKLOG = 128
# Connections taken per wake-up of a listener, so a flood cannot starve the loop.
BATCH = 64
PAUSE_S = 1.0
# Failures of one connection only: accepting goes on.
_PER_CONNECTION = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}

# (connection, open connections of this process) -> True if it was taken elsewhere.
HandOff = Callable[[socket.socket, int], bool]


async def listening_sockets(host: str, port: int, backlog: int = BACKLOG) -> list[socket.socket]:
    """Non-blocking sockets listening on every address of ``host``; OSError if one cannot."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Acceptor:
    """Accepts on ``sockets`` in the running loop and passes each connection on."""

    def __init__(
        self, sockets: list[socket.socket], accepted: Callable[[socket.socket], None]
    ) -> None:
        self.sockets = sockets
        self._accepted = accepted
        self._loop = asyncio.get_running_loop()
        self._paused: list[asyncio.TimerHandle] = []
        for sock in sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(BATCH):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _PER_CONNECTION:
                    continue
                log.warning("accepting HTTP connections paused for %g s: %s", PAUSE_S, exc)
                self._loop.remove_reader(listener.fileno())
                self._paused.append(self._loop.call_later(PAUSE_S, self._resume, listener))
                return
            self._accepted(conn)

    def _resume(self, listener: socket.socket) -> None:
        if listener.fileno() >= 0:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def close(self) -> None:
        """Stop accepting and close the listeners; idempotent."""
        for timer in self._paused:
            timer.cancel()
        self._paused.clear()
        for sock in self.sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                with contextlib.suppress(OSError):
                    sock.close()
