"""A member's connections, held by the daemon too: a member that dies still answers.

When a data-plane member is killed, the kernel would close every connection it
had, and its clients would see them cut. So the daemon keeps a copy of each:

- per member, the daemon makes a ``SOCK_SEQPACKET`` socket pair and a small
  shared table (a memfd, one byte per connection slot, as many slots as the
  member may hold connections), and passes the member its end of both;
- the member's HTTP server is given a ``ConnectionReporter`` (a
  ``providers.http_limits.ConnectionTracker``): each connection it accepts
  takes a free slot, and its descriptor goes to the daemon (SCM_RIGHTS) with
  the slot number. The server writes the connection's phase into the slot:
  ``IN_REQUEST`` once a request head is parsed, ``IDLE`` as soon as its
  response starts. When the member closes a connection it shuts the socket
  down (the daemon's copy would otherwise keep it open), frees the slot and
  tells the daemon, which closes its copy (``HeldConnections``);
- when the member has exited, the daemon reads what is left on the socket
  pair, then, for each connection it holds: ``IN_REQUEST`` -> a ``503`` with
  ``Connection: close``; otherwise (idle, or a response under way, which
  cannot be finished) -> closed. Either way it stops writing (FIN), reads and
  drops what the client still sends for up to ``LINGER_S`` (closing a socket
  with unread bytes would send a reset, which can destroy the 503 before the
  client reads it), then closes.

Per request the member pays two byte stores; per connection one ``sendmsg``
when it opens and one ``shutdown`` and ``send`` when it closes. The daemon's
own connections need none of this: if the daemon dies, the host is gone.

Not covered: connections the member's kernel queue had accepted but the
member had not yet taken (they are reset), and a request whose head the
member had read but not finished parsing (closed like an idle connection; a
client may resend an idempotent request on a kept-alive connection).
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

from providers.http_limits import FREE, IDLE, IN_REQUEST, TrackedSocket, plain_response

log = logging.getLogger(__name__)

LINGER_S = 2.0
_MESSAGE = struct.Struct("<BI")  # (op, slot)
_OPENED = 1
_CLOSED = 2
# Room for a burst of messages before the member's sends would block.
_BUFFER_BYTES = 1 << 20

GONE = plain_response(
    503, "Service Unavailable", "the process serving this request stopped; try again"
)


def raise_fd_limit(wanted: int) -> None:
    """Let this process hold ``wanted`` descriptors if the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("open file limit raised from %s to %s", soft, target)


class ConnectionReporter:
    """The member's side: slots, phases and descriptors for the daemon.

    Implements ``providers.http_limits.ConnectionTracker``. Made in the loop
    that serves the connections (a send that would block waits for the socket
    to be writable there).
    """

    def __init__(self, sock: socket.socket, table: mmap.mmap) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._table = table
        self.states = memoryview(table)
        self._free = list(range(len(table) - 1, -1, -1))
        # Messages a full socket did not take yet, in order; a descriptor in it is a dup.
        self._outbox: deque[tuple[bytes, int | None]] = deque()
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

    def opened(self, sock: TrackedSocket) -> int:
        if not self._free or self._broken:
            return -1
        slot = self._free.pop()
        self.states[slot] = IDLE  # before the daemon can see the descriptor
        self._send(_MESSAGE.pack(_OPENED, slot), sock.fileno())
        return slot

    def closed(self, slot: int, sock: TrackedSocket) -> None:
        _shutdown(sock.fileno())
        self.states[slot] = FREE
        self._free.append(slot)
        self._send(_MESSAGE.pack(_CLOSED, slot), None)

    def _send(self, message: bytes, fd: int | None) -> None:
        if self._broken:
            return
        if not self._outbox:
            try:
                self._send_now(message, fd)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                self._break(exc)
                return
            self._loop.add_writer(self._sock, self._flush)
        # The connection may close before this is sent, and its number be reused.
        self._outbox.append((message, os.dup(fd) if fd is not None else None))

    def _send_now(self, message: bytes, fd: int | None) -> None:
        if fd is None:
            self._sock.send(message)
        else:
            socket.send_fds(self._sock, [message], [fd])

    def _flush(self) -> None:
        while self._outbox:
            message, fd = self._outbox[0]
            try:
                self._send_now(message, fd)
            except BlockingIOError:
                return
            except OSError as exc:
                self._break(exc)
                return
            self._outbox.popleft()
            if fd is not None:
                os.close(fd)
        self._loop.remove_writer(self._sock)

    def _break(self, exc: OSError | None) -> None:
        """The daemon is gone (``exc``: this member is about to stop too), or closing."""
        if exc is not None and not self._broken:
            log.warning("the daemon's connection channel failed: %s", exc)
        self._broken = True
        self._loop.remove_writer(self._sock)
        for _, fd in self._outbox:
            if fd is not None:
                os.close(fd)
        self._outbox.clear()

    def close(self) -> None:
        """Idempotent."""
        if self._sock.fileno() < 0:
            return
        self._break(None)
        self._sock.close()
        self.states.release()
        self._table.close()


class HeldConnections:
    """The daemon's side for one member: its copies of the member's connections.

    ``HeldConnections.create(slots)`` in the daemon's loop; pass
    ``member_fds`` to the member (then ``close_member_fds``); ``await end()``
    once the member has exited.
    """

    def __init__(self, sock: socket.socket, table: mmap.mmap, member_fds: tuple[int, int]) -> None:
        self._sock = sock
        self._table = table
        self.member_fds = member_fds
        self._held: dict[int, int] = {}  # slot -> our copy of the connection's descriptor
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
        """How many of the member's connections the daemon holds a copy of."""
        return len(self._held)

    def close_member_fds(self) -> None:
        """The member has its own copies now (or was never started)."""
        for fd in self.member_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.member_fds = (-1, -1)

    def _receive(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(
                    self._sock, _MESSAGE.size, 1, socket.MSG_CMSG_CLOEXEC
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("a data-plane connection channel failed: %s", exc)
                self._loop.remove_reader(self._sock)
                return
            if not data:  # the member's end is closed: everything has been read
                self._loop.remove_reader(self._sock)
                return
            self._apply(data, fds)

    def _apply(self, data: bytes, fds: list[int]) -> None:
        if len(data) != _MESSAGE.size:
            for fd in fds:
                os.close(fd)
            return
        op, slot = _MESSAGE.unpack(data)
        old = self._held.pop(slot, None)
        if old is not None:
            os.close(old)
        if op == _OPENED and fds:
            self._held[slot] = fds[0]
            for extra in fds[1:]:
                os.close(extra)

    async def end(self) -> tuple[int, int]:
        """Answer what the exited member held: (answered 503, closed); idempotent.

        The caller makes sure the member has exited: a live one could still write.
        """
        if self._ended:
            return 0, 0
        self._ended = True
        self._receive()  # what the member sent before it died is still queued
        self._loop.remove_reader(self._sock)
        self._sock.close()
        self.close_member_fds()
        states = bytes(self._table)
        self._table.close()
        held, self._held = self._held, {}
        socks: list[socket.socket] = []
        answered = 0
        for slot, fd in held.items():
            sock = socket.socket(fileno=fd)
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
        return answered, len(held) - answered

    async def _drain(self, sock: socket.socket) -> None:
        """Read and drop what the client still sends, until it closes."""
        with contextlib.suppress(OSError):
            while await self._loop.sock_recv(sock, 65536):
                pass


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
