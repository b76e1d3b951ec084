"""The HTTP server's limits, over real sockets in front of real components.

Slow or greedy clients (half-sent heads, idle connections, too many connections,
many large uploads at once, stalled bodies) are cut off or made to wait, while
ordinary requests are still served. Timeouts are configured short here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from host.daemon import HostConfig, HostDaemon
from host.errors import ResourceLimitExceeded
from host.runtime.components import ComponentSpec, HostRuntime
from host.runtime.engine import MAX_BYTES_OUT_OF_GUEST
from lattice.connection import NatsOptions
from lattice.natsd import NatsServer
from providers import contracts
from providers.http_limits import ByteBudget
from providers.http_server import (
    DEFAULT_MAX_BODY,
    HandlerError,
    HttpLimits,
    HttpRequest,
    HttpServer,
    Route,
)

MiB = 2**20
Serve = Callable[..., contextlib.AbstractAsyncContextManager[HttpServer]]
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
def serve(compile_cache: Path, components: dict[str, Path]) -> Serve:
    """serve(limits, max_body_bytes): echo at /echo, hello at / (which ignores bodies)."""

    @contextlib.asynccontextmanager
    async def serving(
        limits: HttpLimits, max_body_bytes: int = DEFAULT_MAX_BODY
    ) -> AsyncIterator[HttpServer]:
        runtime = HostRuntime(compile_cache)
        server = HttpServer(
            runtime.handle_http, port=0, max_body_bytes=max_body_bytes, limits=limits
        )
        await server.start()
        try:
            await runtime.start(ComponentSpec("echo", str(components["echo"])))
            await runtime.start(ComponentSpec("hello", str(components["hello-wat"])))
            server.routes.add(Route("echo", "/echo"))
            server.routes.add(Route("hello", "/"))
            yield server
        finally:
            await server.stop()
            await runtime.close()

    return serving


async def _open(server: HttpServer) -> Conn:
    return await asyncio.open_connection(server.bind_host, server.port)


async def _until_closed(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Everything the server sends until it closes the connection."""
    try:
        return await asyncio.wait_for(reader.read(), timeout_s)
    except ConnectionResetError:
        return b""


async def _status(reader: asyncio.StreamReader, timeout_s: float = 3.0) -> int:
    line = await asyncio.wait_for(reader.readline(), timeout_s)
    return int(line.split()[1])


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response (the server always sends Content-Length)."""
    status = await _status(reader, 10.0)
    length = 0
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def _head(path: str, length: int) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n\r\n".encode()


async def _wait_for(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Poll a server counter (they are plain attributes, with no event to wait on)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _close(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _trickle(writers: list[asyncio.StreamWriter]) -> None:
    """Keep sending header lines, never the blank line that ends the head."""
    while True:
        for writer in writers:
            if not writer.is_closing():
                writer.write(b"X-Slow: 1\r\n")
        await asyncio.sleep(0.05)


# -- request heads and idle connections --------------------------------------------


async def test_slowloris_heads_are_cut_off_while_others_are_served(serve: Serve) -> None:
    # Without the head deadline, the idle timeout (30 s here) is all that would end them.
    limits = HttpLimits(header_timeout_s=0.5, idle_timeout_s=30)
    async with serve(limits) as server:
        loop = asyncio.get_running_loop()
        started = loop.time()
        slow = [await _open(server) for _ in range(40)]
        writers = [writer for _, writer in slow]
        for writer in writers:
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")
        # Half of them keep sending header bytes: still cut off at the deadline.
        trickling = asyncio.create_task(_trickle(writers[:20]), name="trickle")
        try:
            async with aiohttp.ClientSession(server.url) as http, http.get("/") as response:
                assert response.status == 200
                assert await response.text() == "Hello from wasmlattice!\n"
            answers = await asyncio.gather(*(_until_closed(r, 5.0) for r, _ in slow))
            elapsed = loop.time() - started
        finally:
            trickling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await trickling
            await _close(writers)
        assert all(a.startswith(b"HTTP/1.1 408") or a == b"" for a in answers), answers
        assert 0.4 < elapsed < 3.0
        assert server.server.rejected_heads == 40
        await _wait_for(lambda: server.server.open_connections == 0)


async def test_an_oversized_head_is_431(serve: Serve) -> None:
    async with serve(HttpLimits(max_head_bytes=1024)) as server:
        reader, writer = await _open(server)
        writer.write(b"GET / HTTP/1.1\r\n" + b"X-Padding: 0123456789\r\n" * 100)
        assert (await _until_closed(reader, 3.0)).startswith(b"HTTP/1.1 431")
        await _close([writer])


async def test_an_idle_kept_alive_connection_is_closed(serve: Serve) -> None:
    async with serve(HttpLimits(idle_timeout_s=0.3)) as server:
        reader, writer = await _open(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await _response(reader))[0] == 200
        started = asyncio.get_running_loop().time()
        assert await _until_closed(reader, 3.0) == b""
        assert asyncio.get_running_loop().time() - started < 2.0
        await _close([writer])


# -- connections -----------------------------------------------------------------


async def test_a_connection_beyond_the_cap_is_refused_at_once(serve: Serve) -> None:
    async with serve(HttpLimits(max_connections=4)) as server:
        held = [await _open(server) for _ in range(4)]
        await _wait_for(lambda: server.server.open_connections == 4)
        reader, writer = await _open(server)
        started = asyncio.get_running_loop().time()
        refused = await _until_closed(reader, 2.0)
        assert refused.startswith(b"HTTP/1.1 503") or refused == b""
        assert asyncio.get_running_loop().time() - started < 1.0
        assert server.server.refused_connections == 1
        # One held connection goes away: a new client gets in again.
        await _close([held[0][1], writer])
        await _wait_for(lambda: server.server.open_connections == 3)
        async with aiohttp.ClientSession(server.url) as http, http.get("/") as response:
            assert response.status == 200
        await _close([w for _, w in held[1:]])


# -- bodies -------------------------------------------------------------------------


async def _slow_upload(server: HttpServer, body: bytes, pieces: int = 8) -> tuple[int, bytes]:
    reader, writer = await _open(server)
    try:
        writer.write(_head("/echo", len(body)))
        step = len(body) // pieces
        for n in range(0, len(body), step):
            writer.write(body[n : n + step])
            await writer.drain()
            await asyncio.sleep(0.02)
        return await _response(reader)
    finally:
        await _close([writer])


async def test_bodies_read_at_once_stay_within_the_budget(serve: Serve) -> None:
    limits = HttpLimits(body_buffer_bytes=2 * MiB, body_wait_s=20)
    async with serve(limits) as server:
        bodies = [os.urandom(MiB) for _ in range(6)]
        answers = await asyncio.gather(*(_slow_upload(server, body) for body in bodies))
        assert answers == [(200, body) for body in bodies]
        assert server.bodies.peak <= 2 * MiB
        assert server.bodies.waited >= 1  # six 1 MiB bodies do not fit in 2 MiB at once
        assert server.bodies.in_use == 0 and server.bodies.refused == 0


async def test_a_body_that_waits_too_long_is_503_before_it_is_read(serve: Serve) -> None:
    limits = HttpLimits(body_buffer_bytes=MiB, body_wait_s=0.3)
    async with serve(limits) as server:
        body = os.urandom(MiB)
        first_reader, first = await _open(server)
        first.write(_head("/echo", MiB) + body[: MiB // 2])
        await _wait_for(lambda: server.bodies.in_use == MiB)
        # Nothing of this body is ever sent: the 503 comes before the server reads it.
        second_reader, second = await _open(server)
        second.write(_head("/echo", MiB))
        assert await _status(second_reader) == 503
        assert server.bodies.refused == 1
        first.write(body[MiB // 2 :])
        assert await _response(first_reader) == (200, body)
        await _close([first, second])
        assert await _slow_upload(server, body) == (200, body)


async def test_a_stalled_body_is_408(serve: Serve) -> None:
    async with serve(HttpLimits(body_idle_timeout_s=0.3)) as server:
        reader, writer = await _open(server)
        writer.write(_head("/echo", 100) + b"x" * 10)
        assert await _status(reader) == 408
        await _close([writer])
        assert server.bodies.in_use == 0


async def test_body_size_limit_end_to_end(serve: Serve) -> None:
    async with serve(HttpLimits()) as server, aiohttp.ClientSession(server.url) as http:
        # The largest body the server takes reaches a component (bodies into a guest
        # are not limited by wasmtime) ...
        async with http.post("/", data=os.urandom(DEFAULT_MAX_BODY)) as response:
            assert response.status == 200
        # ... and one byte more is refused before it is read.
        async with http.post("/echo", data=b"x" * (DEFAULT_MAX_BODY + 1)) as response:
            assert response.status == 413
        # A component can hand back as much as wasmtime copies out of a guest.
        body = os.urandom(MAX_BYTES_OUT_OF_GUEST - 64)
        async with http.post("/echo", data=body) as response:
            assert response.status == 200
            assert await response.read() == body


async def test_a_response_over_what_wasmtime_copies_out_says_why(
    compile_cache: Path, components: dict[str, Path]
) -> None:
    runtime = HostRuntime(compile_cache)
    try:
        await runtime.start(ComponentSpec("echo", str(components["echo"])))
        request = HttpRequest("POST", "/", "", [], bytes(MAX_BYTES_OUT_OF_GUEST + 1))
        with pytest.raises(ResourceLimitExceeded, match="copies out of a guest"):
            await runtime.call("echo", contracts.HTTP_HANDLER, "handle", request)
        with pytest.raises(HandlerError) as raised:
            await runtime.handle_http("echo", request)
        assert raised.value.status == 500
    finally:
        await runtime.close()


async def test_a_4_mib_body_echoes_intact_through_a_streaming_echo(
    compile_cache: Path, components: dict[str, Path]
) -> None:
    """The body limit works end to end: a wasi:http echo streams 4 MiB in and out."""
    runtime = HostRuntime(compile_cache)
    server = HttpServer(runtime.handle_http, port=0, exchanges=runtime.http_exchange)
    await server.start()
    try:
        await runtime.start(ComponentSpec("echo", str(components["wasi-probe"])))
        server.routes.add(Route("echo", "/echo"))
        body = os.urandom(4 * MiB)
        async with aiohttp.ClientSession(server.url) as http:
            async with http.post("/echo", data=body) as response:
                assert response.status == 200
                assert await response.read() == body
            async with http.post("/echo", data=body + b"x") as response:
                assert response.status == 413
    finally:
        await server.stop()
        await runtime.close()


async def test_an_own_contract_response_over_the_guest_limit_is_a_clear_500(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """wasmtime-py 50 cannot raise the hostcall fuel: a guest hands back at most
    MAX_BYTES_OUT_OF_GUEST bytes of list<u8> in one value (host.runtime.engine). The
    own contract returns the body as one value, so a larger response fails with a
    reason in the log, and the host goes on serving."""
    caplog.set_level(logging.DEBUG)
    async with serve(HttpLimits()) as server, aiohttp.ClientSession(server.url) as http:
        async with http.post("/echo", data=os.urandom(4 * MiB)) as response:
            assert response.status == 500
            assert b"fuel" not in await response.read()  # no internals in the body
        assert "than wasmtime copies out of a guest" in caplog.text, caplog.text
        async with http.get("/") as response:
            assert response.status == 200


# -- the byte budget (pure) ------------------------------------------------------


async def test_the_byte_budget_serves_in_arrival_order() -> None:
    budget = ByteBudget(10)
    assert await budget.acquire(6, 1.0) == 6
    large = asyncio.create_task(budget.acquire(6, 5.0))
    await asyncio.sleep(0)
    # 4 bytes are free, but the earlier, larger request goes first.
    small = asyncio.create_task(budget.acquire(4, 5.0))
    await asyncio.sleep(0.05)
    assert not large.done() and not small.done()
    budget.release(6)
    assert await large == 6 and await small == 4
    assert budget.in_use == 10 and budget.peak == 10 and budget.waited == 2
    # More than the whole budget takes all of it, once it is all free.
    budget.release(10)
    assert await budget.acquire(50, 1.0) == 10


async def test_a_byte_budget_waiter_that_gives_up_lets_the_next_in() -> None:
    budget = ByteBudget(10)
    await budget.acquire(8, 1.0)
    assert await budget.acquire(5, 0.05) is None  # waited 50 ms, refused
    assert budget.refused == 1
    assert await budget.acquire(2, 0.05) == 2  # no one left ahead of it
    budget.release(8)
    budget.release(2)
    assert budget.in_use == 0


# -- the host daemon -------------------------------------------------------------


async def test_the_daemon_serves_http_with_its_configured_limits(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    config = HostConfig(
        nats=NatsOptions(nats_server.url),
        state_dir=tmp_path / "host",
        http_port=0,
        http_limits=HttpLimits(max_connections=1),
    )
    daemon = await HostDaemon.start(config)
    try:
        http = daemon.http
        assert http is not None
        held = await _open(http)
        await _wait_for(lambda: http.server.open_connections == 1)
        reader, writer = await _open(http)
        refused = await _until_closed(reader, 2.0)
        assert refused.startswith(b"HTTP/1.1 503") or refused == b""
        await _close([held[1], writer])
    finally:
        await daemon.shutdown()
