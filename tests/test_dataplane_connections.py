"""Connections handed to a member, and the daemon's copies (host.dataplane.connections).

Both sides run here in one process over their real socket pair and shared
table: the daemon's side hands over real TCP connections, the member's side
takes them (raw, or into an HttpServer), and "the member dies" is what the
kernel does when it is killed: its descriptors are closed, with no shutdown
and nothing more sent. The daemon's own accepting server (``accept_here``,
providers.http_accept) is tested here too, with a hand-off of the test's.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from host.dataplane.connections import GIVEN, GONE, ConnectionReporter, HeldConnections
from providers.http_limits import FREE, IDLE, IN_REQUEST
from providers.http_server import (
    HttpRequest,
    HttpResponse,
    HttpServer,
    Invoker,
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


@pytest.fixture
async def listener() -> AsyncIterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


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


def _hello() -> Invoker:
    async def invoke(component_id: str, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, body=b"hello from " + component_id.encode())

    return invoke


async def test_a_dead_members_connections_get_503_a_close_or_the_daemon(
    pair: tuple[HeldConnections, ConnectionReporter], listener: socket.socket
) -> None:
    held, reporter = pair
    loop = asyncio.get_running_loop()
    taken: list[socket.socket] = []

    async def take(conn: socket.socket) -> None:
        taken.append(conn)
        if len(taken) <= 3:
            reporter.opened(conn)
        else:  # the fourth arrives, but the member dies before it opens it
            await asyncio.Event().wait()

    reporter.serve(take)
    ends = [await _accepted(listener) for _ in range(4)]
    waiting, idle, gone, untouched = (client for client, _ in ends)
    assert all(held.give(server) for _, server in ends)
    await _until(lambda: len(taken) == 4, "the member took all four")
    assert [reporter.opened(conn) for conn in taken[:3]] == [-1] * 3  # no slot twice
    assert bytes(reporter.states[:4]) == bytes([IDLE, IDLE, IDLE, GIVEN])
    reporter.states[0] = IN_REQUEST
    await loop.sock_sendall(waiting, b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab")
    reporter.closed(2, taken[2])  # the member closes one itself
    assert reporter.states[2] == FREE
    assert await loop.sock_recv(gone, 100) == b""  # shut down although the daemon held it
    await _until(lambda: held.held == 3, "the daemon holds the three open connections")
    # The member dies: the kernel closes its descriptors, nothing else happens.
    for conn in taken:
        conn.close()
    reporter.close()
    served_here: list[socket.socket] = []

    def serve_here(conn: socket.socket) -> None:
        conn.sendall(b"served by the daemon")
        served_here.append(conn)

    ending = asyncio.create_task(held.end(serve_here))
    answer = b""
    while chunk := await loop.sock_recv(waiting, 1000):
        answer += chunk
    assert answer == GONE and answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nConnection: close\r\n" in answer
    await loop.sock_sendall(waiting, b"c")  # the rest of the body: read and dropped
    assert await loop.sock_recv(idle, 100) == b""  # closed, not reset
    # Not a byte of it was read by the member: the daemon serves it whole.
    assert await loop.sock_recv(untouched, 100) == b"served by the daemon"
    for client in (waiting, idle, gone, untouched, *served_here):
        client.close()
    assert await ending == (1, 1, 1)
    assert held.held == 0 and await held.end() == (0, 0, 0)


async def test_give_declines_when_the_member_is_full_and_reuses_freed_slots_lowest_first(
    listener: socket.socket,
) -> None:
    held = HeldConnections.create(2)
    reporter = ConnectionReporter.from_fds(*held.member_fds)
    held.member_fds = (-1, -1)
    taken: list[socket.socket] = []

    async def take(conn: socket.socket) -> None:
        taken.append(conn)
        reporter.opened(conn)

    reporter.serve(take)
    ends = [await _accepted(listener) for _ in range(3)]
    try:
        assert held.give(ends[0][1]) and held.give(ends[1][1])
        third = ends[2][1]
        assert not held.give(third) and third.fileno() >= 0  # declined, left as it was
        await _until(lambda: len(taken) == 2, "the member took two")
        reporter.closed(0, taken[0])
        await _until(lambda: held.held == 1, "the daemon freed slot 0")
        assert held.give(third)
        await _until(lambda: len(taken) == 3, "the member took the third")
        assert reporter.states[0] == IDLE  # the freed slot, given again
    finally:
        for conn in taken:
            conn.close()
        for client, _ in ends:
            client.close()
        reporter.close()
        await held.end()
    # A member that is gone takes nothing.
    gone = HeldConnections.create(2)
    gone.close_member_fds()
    conn, other = socket.socketpair()
    try:
        assert not gone.give(conn) and conn.fileno() >= 0
    finally:
        conn.close()
        other.close()
        await gone.end()


async def test_closings_wait_in_order_when_the_channel_is_full(
    pair: tuple[HeldConnections, ConnectionReporter],
) -> None:
    held, reporter = pair
    taken: list[socket.socket] = []

    async def take(conn: socket.socket) -> None:
        taken.append(conn)
        reporter.opened(conn)

    reporter.serve(take)
    a, b = socket.socketpair()
    try:
        for _ in range(SLOTS):
            assert held.give(b.dup())
        await _until(lambda: len(taken) == SLOTS, "the member took them all")
        held._loop.remove_reader(held._sock)  # the daemon reads nothing for a while
        reporter._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
        for slot, conn in enumerate(taken):
            reporter.closed(slot, conn)
        assert reporter._outbox  # the rest waits for room, in order
        held._loop.add_reader(held._sock, held._receive)
        await _until(lambda: not reporter._outbox and held.held == 0, "all closings applied")
        assert bytes(reporter.states) == bytes(SLOTS)
    finally:
        for conn in taken:
            conn.close()
        a.close()
        b.close()


async def test_the_http_server_marks_each_phase_of_a_connection(
    pair: tuple[HeldConnections, ConnectionReporter], listener: socket.socket
) -> None:
    held, reporter = pair
    entered, release = asyncio.Event(), asyncio.Event()

    async def invoke(component_id: str, request: HttpRequest) -> HttpResponse:
        entered.set()
        await release.wait()
        return HttpResponse(200, body=b"done")

    http = HttpServer(invoke, "127.0.0.1", 0, tracker=reporter)
    http.routes.add(Route("c", "/"))
    reporter.serve(http.serve_accepted)
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        server, _ = await asyncio.get_running_loop().sock_accept(listener)
        assert held.give(server)
        await _until(lambda: reporter.states[0] == IDLE, "the member opened the connection")
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await entered.wait()
        assert reporter.states[0] == IN_REQUEST
        release.set()
        await reader.readuntil(b"done")
        assert reporter.states[0] == IDLE  # answered: a crash now only closes it
        writer.close()
        await _until(lambda: held.held == 0, "the daemon dropped its copy")
        assert bytes(reporter.states) == bytes(SLOTS)
    finally:
        await http.stop()


async def test_a_streamed_response_that_started_is_no_longer_in_request(
    pair: tuple[HeldConnections, ConnectionReporter], listener: socket.socket
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
    reporter.serve(http.serve_accepted)
    try:
        reader, writer = await asyncio.open_connection(*listener.getsockname())
        server, _ = await asyncio.get_running_loop().sock_accept(listener)
        assert held.give(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await started.wait()
        # Headers are out: a 503 from the daemon now would corrupt the response.
        assert [s for s in reporter.states if s != FREE] == [IDLE]
        release.set()
        await reader.readuntil(b"done")
        writer.close()
        await _until(lambda: held.held == 0, "the daemon dropped its copy")
    finally:
        await http.stop()


async def test_the_accepting_server_serves_what_its_hand_off_declines(
    pair: tuple[HeldConnections, ConnectionReporter],
) -> None:
    held, reporter = pair
    daemon = HttpServer(_hello(), "127.0.0.1", 0, accept_here=True)
    daemon.routes.add(Route("daemon", "/"))
    member = HttpServer(_hello(), "127.0.0.1", 0, tracker=reporter)
    member.routes.add(Route("member", "/"))
    reporter.serve(member.serve_accepted)
    loads: list[int] = []

    def least_connections(conn: socket.socket, load: int) -> bool:
        loads.append(load)
        return held.held < load and held.give(conn)

    daemon.hand_off = least_connections
    await daemon.start()
    clients = []
    try:
        bodies = []
        for _ in range(6):  # one after the other, each kept open
            reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
            clients.append(writer)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            bodies.append((await reader.read(100)).decode())
        # Each went to whichever held fewer: turn and turn about, the daemon first.
        assert bodies == ["hello from daemon", "hello from member"] * 3
        assert loads == [0, 1, 1, 2, 2, 3]
        assert daemon.load == 3 and held.held == 3
    finally:
        for writer in clients:
            writer.close()
        await daemon.stop()
        await member.stop()


async def test_the_member_drops_a_message_that_is_not_a_connection(
    pair: tuple[HeldConnections, ConnectionReporter], listener: socket.socket
) -> None:
    held, reporter = pair
    taken: list[socket.socket] = []

    async def take(conn: socket.socket) -> None:
        taken.append(conn)
        reporter.opened(conn)

    reporter.serve(take)
    spare, other = socket.socketpair()
    try:
        # Malformed: too short; a GIVE with no descriptor, too long, with two; another op.
        held._sock.send(b"\x01")
        held._sock.send(b"\x01\x00\x00\x00\x00")
        held._sock.send(b"\x01\x00\x00\x00\x00\x00")  # too long
        socket.send_fds(held._sock, [b"\x01\x00\x00\x00\x00"], [spare.fileno(), other.fileno()])
        socket.send_fds(held._sock, [b"\x02\x00\x00\x00\x00"], [spare.fileno()])
        client, server = await _accepted(listener)
        assert held.give(server)  # a real one after them is still taken
        await _until(lambda: taken, "the member took the real connection")
        assert len(taken) == 1 and reporter.states[0] == IDLE
        client.close()
    finally:
        for conn in taken:
            conn.close()
        spare.close()
        other.close()
