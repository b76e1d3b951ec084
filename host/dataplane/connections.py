"""Connections handed to members, with a copy kept: a member that dies still answers.

The daemon alone accepts on the host's HTTP port. Each connection goes to the
process of the host that holds the fewest open connections, the daemon
included (``DataPlaneGroup.take``): a few kept-alive clients are spread evenly,
where ``SO_REUSEPORT``'s hash often gave one process twice the other's share,
and the tail latency followed. The daemon keeps a copy of every connection it
hands to a member, so that if the member is killed its clients are answered
rather than cut:

- per member, the daemon makes a ``SOCK_SEQPACKET`` socket pair and a small
  shared table (a memfd, one byte per connection slot, as many slots as the
  member may hold connections), and passes the member its end of both;
- to hand a connection over, the daemon takes a free slot, marks it ``GIVEN``
  and sends the descriptor (SCM_RIGHTS) with the slot number
  (``HeldConnections.give``), keeping its own copy. The member's
  ``ConnectionReporter`` gives it to the member's HTTP server, which is told
  the slot when the connection opens (a ``providers.http_limits.ConnectionTracker``)
  and from then on writes the connection's phase into it: ``IDLE``, then
  ``IN_REQUEST`` once a request head is parsed, ``IDLE`` again as soon as its
  response starts. When the member closes a connection it shuts the socket
  down (the daemon's copy would otherwise keep it open), frees the slot and
  tells the daemon, which closes its copy and may give the slot again;
- when the member has exited, the daemon reads what is left on the socket
  pair, then, for each connection it holds: ``GIVEN`` (the member never
  started on it, not a byte of it was read) -> served by the daemon itself;
  ``IN_REQUEST`` -> a ``503`` with ``Connection: close``; otherwise (idle, or a
  response under way, which cannot be finished) -> closed. Either way it stops
  writing (FIN), reads and drops what the client still sends for up to
  ``LINGER_S`` (closing a socket with unread bytes would send a reset, which
  can destroy the 503 before the client reads it), then closes.

Per request the member pays two byte stores; per connection the daemon one
``sendmsg`` when it opens, the member one ``shutdown`` and ``send`` when it
closes. The daemon's own connections need none of this: if the daemon dies,
the host is gone.

Not covered: a request whose head the member had read but not finished
parsing (closed like an idle connection; a client may resend an idempotent
request on a kept-alive connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import resource
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from providers.http_limits import FREE, IDLE, IN_REQUEST, TrackedSocket, plain_response

log = logging.getLogger(__name__)

LINGER_S = 2.0
_MESSAGE = struct.Struct("<BI")  # (op, slot)
_GIVE = 1  # daemon -> member, with the connection's descriptor
_CLOSED = 2  # member -> daemon
_CUT = b"\x00"  # what a truncated message is read as: no op is 0
# Room for a burst of messages before a send would block.
_BUFFER_BYTES = 1 << 20
# A slot's phase besides those the HTTP server writes (providers.http_limits):
# handed to the member, which has not started on it yet.
GIVEN = 3

GONE = plain_response(
    503, "Service Unavailable", "the process serving this request stopped; try again"
)

# Serves a connection accepted elsewhere in this process: the member's
# ``HttpServer.serve_accepted``, the daemon's ``HttpServer.adopt``.
ServeAccepted = Callable[[socket.socket], Awaitable[None]]
Adopt = Callable[[socket.socket], None]


class Ended(NamedTuple):
    """What became of an exited member's connections."""

    answered: int  # its request answered 503
    closed: int  # idle or mid-response: closed
    served_here: int  # never started on: the daemon serves it


def raise_fd_limit(wanted: int) -> None:
    """Let this process hold ``wanted`` descriptors if the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("open file limit raised from %s to %s", soft, target)


class ConnectionReporter:
    """The member's side: the connections the daemon hands over, their slots and phases.

    Implements ``providers.http_limits.ConnectionTracker``. Made in the loop
    that serves the connections; ``serve(serve_accepted)`` starts taking them
    (a send that would block waits for the socket to be writable there).
    """

    def __init__(self, sock: socket.socket, table: mmap.mmap) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._table = table
        self.states = memoryview(table)
        # Descriptor -> slot of each connection handed over that the server has not opened yet.
        self._given: dict[int, int] = {}
        self._serve: ServeAccepted | None = None
        self._taking: set[asyncio.Task[None]] = set()
        # Messages a full socket did not take yet, in order.
        self._outbox: deque[bytes] = deque()
        self._broken = False
        self._loop = asyncio.get_running_loop()

    @classmethod
    def from_fds(cls, channel_fd: int, states_fd: int) -> ConnectionReporter:
        sock = socket.socket(fileno=channel_fd)
        try:
            table = mmap.mmap(states_fd, os.fstat(states_fd).st_size)
        finally:
            os.close(states_fd)
        return cls(sock, table)

    def serve(self, serve_accepted: ServeAccepted) -> None:
        """Serve each connection the daemon hands over with ``serve_accepted``; idempotent."""
        if self._serve is None and not self._broken:
            self._serve = serve_accepted
            self._loop.add_reader(self._sock, self._receive)

    def _receive(self) -> None:
        while not self._broken:
            try:
                message = _next_message(self._sock)
            except OSError as exc:
                self._break(exc)
                return
            if message is None:
                return
            data, fds = message
            if not data:  # the daemon is gone: this member stops (lattice.process.watch_parent)
                self._loop.remove_reader(self._sock)
                return
            conns = [socket.socket(fileno=fd) for fd in fds]
            if len(data) != _MESSAGE.size or len(conns) != 1 or data[0] != _GIVE:
                for conn in conns:
                    conn.close()
                continue
            (conn,) = conns
            _, slot = _MESSAGE.unpack(data)
            self._given[conn.fileno()] = slot
            task = self._loop.create_task(self._take(conn, slot))
            self._taking.add(task)
            task.add_done_callback(self._taking.discard)

    async def _take(self, conn: socket.socket, slot: int) -> None:
        fd = conn.fileno()
        try:
            assert self._serve is not None
            await self._serve(conn)
        except Exception as exc:  # e.g. the server is stopping; the daemon closes its copy
            log.warning("a connection handed over by the daemon could not be served: %s", exc)
            conn.close()
        if self._given.pop(fd, None) is not None:
            self._free(slot)  # the server never opened it (refused, or failed above)

    def opened(self, sock: TrackedSocket) -> int:
        slot = self._given.pop(sock.fileno(), -1)
        if slot >= 0:
            self.states[slot] = IDLE
        return slot

    def closed(self, slot: int, sock: TrackedSocket) -> None:
        _shutdown(sock.fileno())
        self._free(slot)

    def _free(self, slot: int) -> None:
        self.states[slot] = FREE
        self._send(_MESSAGE.pack(_CLOSED, slot))

    def _send(self, message: bytes) -> None:
        if self._broken:
            return
        if not self._outbox:
            try:
                self._sock.send(message)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                self._break(exc)
                return
            self._loop.add_writer(self._sock, self._flush)
        self._outbox.append(message)

    def _flush(self) -> None:
        while self._outbox:
            try:
                self._sock.send(self._outbox[0])
            except BlockingIOError:
                return
            except OSError as exc:
                self._break(exc)
                return
            self._outbox.popleft()
        self._loop.remove_writer(self._sock)

    def _break(self, exc: OSError | None) -> None:
        """The daemon is gone (``exc``: this member is about to stop too), or closing."""
        if exc is not None and not self._broken:
            log.warning("the daemon's connection channel failed: %s", exc)
        self._broken = True
        self._loop.remove_reader(self._sock)
        self._loop.remove_writer(self._sock)
        self._outbox.clear()

    def close(self) -> None:
        """Idempotent. Connections handed over but not served yet are left to the daemon."""
        if self._sock.fileno() < 0:
            return
        self._break(None)
        for task in self._taking:
            task.cancel()
        self._sock.close()
        self.states.release()
        self._table.close()


class HeldConnections:
    """The daemon's side for one member: the connections it hands over, and its copies.

    ``HeldConnections.create(slots)`` in the daemon's loop; pass
    ``member_fds`` to the member (then ``close_member_fds``); ``give`` it
    connections; ``await end()`` once the member has exited.
    """

    def __init__(self, sock: socket.socket, table: mmap.mmap, member_fds: tuple[int, int]) -> None:
        self._sock = sock
        self._table = table
        self.member_fds = member_fds
        self._held: dict[int, int] = {}  # slot -> our copy of the connection's descriptor
        self._free = list(range(len(table) - 1, -1, -1))  # pop() takes the lowest
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock, self._receive)
        self._ended = False

    @classmethod
    def create(cls, slots: int) -> HeldConnections:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for end in (ours, theirs):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER_BYTES)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER_BYTES)
        ours.setblocking(False)
        states_fd = os.memfd_create("wasmlattice-data-plane-states", os.MFD_CLOEXEC)
        os.ftruncate(states_fd, slots)
        table = mmap.mmap(states_fd, slots)
        return cls(ours, table, (theirs.detach(), states_fd))

    @property
    def held(self) -> int:
        """The member's open connections (handed over, not yet closed by it)."""
        return len(self._held)

    def close_member_fds(self) -> None:
        """The member has its own copies now (or was never started)."""
        for fd in self.member_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.member_fds = (-1, -1)

    def give(self, conn: socket.socket) -> bool:
        """Hand ``conn`` to the member, keeping a copy (``conn`` is detached then).

        False, with ``conn`` untouched, if the member holds all the connections
        it may, its channel is full, or it is gone.
        """
        if self._ended or not self._free:
            return False
        slot = self._free[-1]
        self._table[slot] = GIVEN  # before the member can see the descriptor
        try:
            socket.send_fds(self._sock, [_MESSAGE.pack(_GIVE, slot)], [conn.fileno()])
        except OSError:
            self._table[slot] = FREE
            return False
        self._free.pop()
        self._held[slot] = conn.detach()
        return True

    def _receive(self) -> None:
        while True:
            try:
                message = _next_message(self._sock)
            except OSError as exc:
                log.warning("a data-plane connection channel failed: %s", exc)
                self._loop.remove_reader(self._sock)
                return
            if message is None:
                return
            data, fds = message
            if not data:  # the member's end is closed: everything has been read
                self._loop.remove_reader(self._sock)
                return
            for fd in fds:  # a member sends none
                os.close(fd)
            if len(data) == _MESSAGE.size and data[0] == _CLOSED:
                self._closed(_MESSAGE.unpack(data)[1])

    def _closed(self, slot: int) -> None:
        fd = self._held.pop(slot, None)
        if fd is not None:
            os.close(fd)
            self._free.append(slot)

    async def end(self, serve_here: Adopt | None = None) -> Ended:
        """Answer what the exited member held (see the module's docstring); idempotent.

        ``serve_here`` serves the connections the member never started on
        (without it they are closed). The caller makes sure the member has
        exited: a live one could still write.
        """
        if self._ended:
            return Ended(0, 0, 0)
        self._ended = True
        self._receive()  # what the member sent before it died is still queued
        self._loop.remove_reader(self._sock)
        self._sock.close()
        self.close_member_fds()
        states = bytes(self._table)
        self._table.close()
        held, self._held = self._held, {}
        socks: list[socket.socket] = []
        answered = served = 0
        for slot, fd in held.items():
            sock = socket.socket(fileno=fd)
            if states[slot] == GIVEN and serve_here is not None:
                serve_here(sock)
                served += 1
                continue
            sock.setblocking(False)
            if states[slot] == IN_REQUEST:
                with contextlib.suppress(OSError):
                    sock.send(GONE)
                    answered += 1
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            socks.append(sock)
        try:
            async with asyncio.timeout(LINGER_S):
                await asyncio.gather(*(self._drain(sock) for sock in socks))
        except TimeoutError:
            pass
        finally:
            for sock in socks:
                sock.close()
        return Ended(answered, len(socks) - answered, served)

    async def _drain(self, sock: socket.socket) -> None:
        """Read and drop what the client still sends, until it closes."""
        with contextlib.suppress(OSError):
            while await self._loop.sock_recv(sock, 65536):
                pass


def _next_message(sock: socket.socket) -> tuple[bytes, list[int]] | None:
    """One message from the channel and the descriptors with it; None if none is waiting.

    b"" when the other end is closed and everything has been read; OSError if it failed.
    A message cut short (longer than any, or with more than one descriptor: the kernel
    drops the rest) comes back as ``_CUT``, which no end acts on.
    """
    try:
        data, fds, flags, _ = socket.recv_fds(sock, _MESSAGE.size, 1, socket.MSG_CMSG_CLOEXEC)
    except (BlockingIOError, InterruptedError):
        return None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        return _CUT, []
    return data, fds


def _shutdown(fd: int) -> None:
    """End the TCP connection on ``fd`` even though the daemon holds a copy of it.

    Through a socket object of our own: uvloop's transports hand out sockets whose
    ``shutdown()`` raises TypeError. Detached again, so ``fd`` stays the transport's.
    """
    if fd < 0:
        return
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already reset by the client
    finally:
        sock.detach()
