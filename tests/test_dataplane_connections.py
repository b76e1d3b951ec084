"""The daemon's copies of a member's connections (host.dataplane.connections), in one process.

Both sides run here over their real socket pair and shared table: the member's
side reports real TCP connections (raw ones, or an HttpServer's), and "the
member dies" is what the kernel does when it is killed: its descriptors are
closed, with no shutdown and nothing more sent.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from host.dataplane.connections import GONE, ConnectionReporter, HeldConnections
from providers.http_limits import FREE, IDLE, IN_REQUEST
from providers.http_server import (
    HttpRequest,
    HttpResponse,
    HttpServer,
    ResponseSink,
    Route,
    StreamedRequest,
)

SLOTS = 8


# Every test on both loops: members run on uvloop (lattice.eventloop), whose
# transports' sockets differ from asyncio's (no shutdown(), for one).
pytestmark = pytest.mark.both_loops


@pytest.fixture
async def pair() -> AsyncIterator[tuple[HeldConnections, ConnectionReporter]]:
    held = HeldConnections.create(SLOTS)
    reporter = ConnectionReporter.from_fds(*held.member_fds)
    held.member_fds = (-1, -1)  # the reporter owns them now, as a member would
    yield held, reporter
    reporter.close()
    await held.end()


async def _until(condition: object, what: str) -> None:
    for _ in range(200):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached: {what}")


async def _accepted(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """A TCP connection: (the client's end, the server's end)."""
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setblocking(False)
    await loop.sock_connect(client, listener.getsockname())
    server, _ = await loop.sock_accept(listener)
    return client, server


async def test_a_dead_members_request_gets_503_and_its_idle_connection_a_close(
    pair: tuple[HeldConnections, ConnectionReporter],
) -> None:
    held, reporter = pair
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    waiting, waiting_server = await _accepted(listener)
    idle, idle_server = await _accepted(listener)
    gone, gone_server = await _accepted(listener)
    slots = [reporter.opened(s) for s in (waiting_server, idle_server, gone_server)]
    assert sorted(slots) == [0, 1, 2] and bytes(reporter.states[:3]) == bytes([IDLE] * 3)
    reporter.states[slots[0]] = IN_REQUEST
    await loop.sock_sendall(waiting, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab")
    reporter.closed(slots[2], gone_server)  # the member closes one itself
    assert reporter.states[slots[2]] == FREE
    assert await loop.sock_recv(gone, 100) == b""  # shut down although the daemon held it
    await _until(lambda: held.held == 2, "the daemon holds the two open connections")
    # The member dies: the kernel closes its descriptors, nothing else happens.
    for sock in (waiting_server, idle_server, gone_server, listener):
        sock.close()
    reporter.close()
    ending = asyncio.create_task(held.end())
    answer = b""
    while chunk := await loop.sock_recv(waiting, 1000):
        answer += chunk
    assert answer == GONE and answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nConnection: close\r\n" in answer
    await loop.sock_sendall(waiting, b"c")  # the rest of the body: read and dropped
    assert await loop.sock_recv(idle, 100) == b""  # closed, not reset
    waiting.close()
    idle.close()
    gone.close()
    assert await ending == (1, 1)
    assert held.held == 0 and await held.end() == (0, 0)


async def test_slots_are_reused_in_order_even_when_the_channel_is_full() -> None:
    many = HeldConnections.create(4096)
    big = ConnectionReporter.from_fds(*many.member_fds)
    many.member_fds = (-1, -1)
    a, b = socket.socketpair()
    try:
        # No await between: the daemon reads none of these until the channel is full.
        slots = [big.opened(b) for _ in range(3000)]
        assert big._outbox  # the rest waits for room, in order
        for slot in slots[:1000]:
            big.closed(slot, a)
        reused = [big.opened(b) for _ in range(500)]
        assert set(reused) <= set(slots[:1000])
        await _until(lambda: not big._outbox and many.held == 2500, "all messages applied")
    finally:
        big.close()
        a.close()  # the daemon's copies of b see the end at once
        await many.end()
        b.close()


async def test_the_http_server_marks_each_phase_of_a_connection(
    pair: tuple[HeldConnections, ConnectionReporter],
) -> None:
    held, reporter = pair
    entered, release = asyncio.Event(), asyncio.Event()

    async def invoke(component_id: str, request: HttpRequest) -> HttpResponse:
        entered.set()
        await release.wait()
        return HttpResponse(200, body=b"done")

    http = HttpServer(invoke, "127.0.0.1", 0, tracker=reporter)
    http.routes.add(Route("c", "/"))
    await http.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        await _until(lambda: held.held == 1, "the daemon holds the connection")
        (slot,) = [i for i in range(SLOTS) if reporter.states[i] != FREE]
        assert reporter.states[slot] == IDLE
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await entered.wait()
        assert reporter.states[slot] == IN_REQUEST
        release.set()
        await reader.readuntil(b"done")
        assert reporter.states[slot] == IDLE  # answered: a crash now only closes it
        writer.close()
        await _until(lambda: held.held == 0, "the daemon dropped its copy")
        assert bytes(reporter.states) == bytes(SLOTS)
    finally:
        await http.stop()


async def test_a_streamed_response_that_started_is_no_longer_in_request(
    pair: tuple[HeldConnections, ConnectionReporter],
) -> None:
    held, reporter = pair
    started, release = asyncio.Event(), asyncio.Event()

    async def never(component_id: str, request: HttpRequest) -> HttpResponse:
        raise AssertionError("the streamed contract serves this route")

    async def stream(request: StreamedRequest, sink: ResponseSink) -> None:
        await sink.start(200, [("content-type", b"text/plain")])
        started.set()
        await release.wait()
        await sink.write(b"done")
        await sink.finish()

    http = HttpServer(never, "127.0.0.1", 0, exchanges=lambda _: stream, tracker=reporter)
    http.routes.add(Route("c", "/"))
    await http.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await started.wait()
        await _until(lambda: held.held == 1, "the daemon holds the connection")
        # Headers are out: a 503 from the daemon now would corrupt the response.
        assert [s for s in reporter.states if s != FREE] == [IDLE]
        release.set()
        await reader.readuntil(b"done")
        writer.close()
        await _until(lambda: held.held == 0, "the daemon dropped its copy")
    finally:
        await http.stop()
