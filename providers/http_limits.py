"""What one HTTP client may hold of the http-server provider, and for how long.

A host's HTTP port is reachable by anything on its network, so every resource
a client can make the server hold is bounded (``HttpLimits``, defaults safe for
a shared machine):

- **connections**: at most ``max_connections`` open at once. One more is
  answered ``503`` and closed as soon as it is accepted, before anything of it
  is parsed; the listening socket keeps accepting, so the refusal is prompt.
- **request head**: a client must deliver a whole request head within
  ``header_timeout_s``, counted from the connection's opening (first request)
  or from the head's first byte (later requests on a kept-alive connection),
  and in at most ``max_head_bytes`` (request line, header fields and their
  count have their own bounds); otherwise ``408`` / ``431`` / ``414`` and the
  connection is closed. An idle timeout alone would not do: a slowloris client
  trickling a head is never idle.
- **idle keep-alive**: a kept-alive connection with no new request is closed
  after ``idle_timeout_s``.
- **request bodies**: bytes of bodies read (and held until the component has
  answered) at once are bounded by ``body_buffer_bytes`` (``ByteBudget``). A
  request reserves its ``Content-Length`` (the maximum body size when the
  length is not known) *before* reading any of its body; a request that cannot
  get its reservation within ``body_wait_s`` is answered ``503``. Until then
  the connection stops reading its socket, so a waiting request holds only a
  read buffer. The body itself must arrive within ``body_timeout_s``
  with no gap longer than ``body_idle_timeout_s`` (``408`` otherwise).

  The reservation is held until the component has answered, because a body is
  costliest in the call: wasmtime's C API passes a ``list<u8>`` as one 32-byte C
  value and then one 48-byte Rust value per byte, so a 4 MiB body takes ~350 MB
  for the moment of the call. Measured (150 concurrent 4 MiB uploads, 2 cores):
  peak RSS 2.9 GB with a 64 MiB budget, 1.5 GB with 16 MiB, 0.87 GB with 8 MiB.

A head pipelined behind a request being answered gets its deadline from the
end of that answer.

The connection cap, the head and idle rules and the lingering are applied by
the HTTP protocol (``providers.http_protocol``); the body budget and size by
the request handler (``providers.http_server``).

A server may also be given a ``ConnectionTracker``: something outside the
process that keeps a copy of each connection, so that it can still answer the
connection's client if this process dies (``host.dataplane.connections``). The
server tells it of each connection opened (``opened``, which gives the
connection a slot) and closed (``closed``), and writes each connection's phase
into its slot of ``states``: ``IN_REQUEST`` once a request head is parsed and
nothing of its answer has been written yet, ``IDLE`` from the moment its
response is about to be written (and between requests). That is two byte
stores per request; a server without a tracker pays one attribute check.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, fields
from typing import Protocol


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on what clients can make the HTTP server hold (seconds, bytes, counts)."""

    # Whole request head, from connection open or the head's first byte.
    header_timeout_s: float = 10.0
    # A kept-alive connection with no request in flight.
    idle_timeout_s: float = 15.0
    # Largest gap between two reads of a body, and the whole body.
    body_idle_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_connections: int = 512
    # Bytes of request bodies read or held at once (all connections), and how
    # long a request waits for its share before it is answered 503. Small on
    # purpose: in a component call a body costs ~80 times its size for a moment
    # (see the module docstring); 8 MiB is two bodies of the default 4 MiB maximum.
    body_buffer_bytes: int = 8 * 2**20
    body_wait_s: float = 5.0
    # Request head size: in total, per request line or header field, header count.
    max_head_bytes: int = 64 * 2**10
    max_line_bytes: int = 8190
    max_field_bytes: int = 8190
    max_headers: int = 128
    # How long an unread body is still read (and dropped) after an early
    # answer (408, 413, 503), so the client sees the answer rather than a reset.
    lingering_s: float = 2.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            if getattr(self, spec.name) <= 0:
                raise ValueError(f"HttpLimits.{spec.name} must be positive")


class ByteBudget:
    """A first-come, first-served semaphore counted in bytes.

    ``acquire(n)`` waits until ``n`` bytes are free (a request larger than the
    whole budget takes all of it); later requests queue behind an earlier one
    even when they would fit, so a large body is not starved by small ones.
    ``peak``, ``waited`` and ``refused`` say how the budget was used.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self.waited = 0
        self.refused = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, amount: int, timeout_s: float) -> int | None:
        """Reserve ``amount`` bytes; the amount reserved, or None after ``timeout_s``."""
        amount = min(amount, self.capacity)
        if not self._waiters and self.in_use + amount <= self.capacity:
            self._take(amount)
            return amount
        self.waited += 1
        entry = (amount, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout_s):
                await entry[1]
        except BaseException as exc:
            if entry[1].done() and not entry[1].cancelled():
                self.release(amount)  # granted just as we gave up
            else:
                entry[1].cancel()
                self._waiters.remove(entry)
                self._grant()  # a large waiter leaving may let smaller ones in
            if isinstance(exc, TimeoutError):
                self.refused += 1
                return None
            raise
        return amount

    def release(self, amount: int) -> None:
        self.in_use -= amount
        self._grant()

    def _take(self, amount: int) -> None:
        self.in_use += amount
        self.peak = max(self.peak, self.in_use)

    def _grant(self) -> None:
        while self._waiters:
            amount, future = self._waiters[0]
            if self.in_use + amount > self.capacity:
                return
            self._waiters.popleft()
            self._take(amount)
            future.set_result(None)


def plain_response(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for the protocol to send."""
    body = message.encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# A connection's phase in its tracker's ``states`` (FREE: no connection in the slot).
FREE = 0
IDLE = 1
IN_REQUEST = 2


class TrackedSocket(Protocol):
    """What a tracker gets of a connection's socket (asyncio's ``TransportSocket``,
    uvloop's ``PseudoSocket``: no ``shutdown()`` there)."""

    def fileno(self) -> int: ...


class ConnectionTracker(Protocol):
    """Told of every connection an ``HttpFront`` opens and closes (see the docstring)."""

    # One byte per slot, written by the server: FREE, IDLE or IN_REQUEST.
    states: memoryview

    def opened(self, sock: TrackedSocket) -> int:
        """A slot for a new connection (marked IDLE), or -1 to leave it untracked."""
        ...

    def closed(self, slot: int, sock: TrackedSocket) -> None:
        """The connection in ``slot`` is closing: its socket is still open."""
        ...
