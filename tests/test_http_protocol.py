"""The HTTP/1.1 front of the http-server provider (providers.http_protocol) over real sockets.

Handlers here are plain Python (no component): what is checked is the wire,
byte for byte where it matters: pipelining, keep-alive and close, HEAD,
HTTP/1.0, ``Expect: 100-continue``, head limits, malformed bodies, and the
framing of streamed answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from providers.http_server import (
    HandlerError,
    HttpLimits,
    HttpRequest,
    HttpResponse,
    HttpServer,
    ResponseSink,
    Route,
    StreamedRequest,
)

pytestmark = pytest.mark.both_loops


async def _echo(component_id: str, request: HttpRequest) -> HttpResponse:
    headers = [("X-Path", request.path), ("X-Query", request.query), ("Connection", "bogus")]
    return HttpResponse(200, headers, b"<" + request.body + b">")


async def _streamed(request: StreamedRequest, sink: ResponseSink) -> None:
    path = request.path_with_query
    if path == "/stream/chunked":
        await sink.start(200, [("content-type", b"text/plain"), ("connection", b"x")])
        await sink.write(b"hello ")
        await sink.write(b"world")
        await sink.finish()
    elif path == "/stream/length":
        await sink.start(200, [("content-length", b"5")])
        await sink.write(b"hello")
        await sink.finish()
    elif path in ("/stream/short", "/stream/long"):  # a body at odds with its length
        await sink.start(200, [("content-length", b"10" if path == "/stream/short" else b"3")])
        await sink.write(b"hello")
        await sink.finish()
    else:  # /stream/abort: the answer starts, then breaks
        await sink.start(200, [])
        await sink.write(b"partial")
        raise HandlerError(500, "the component failed")


@contextlib.asynccontextmanager
async def _serving(limits: HttpLimits | None = None) -> AsyncIterator[HttpServer]:
    server = HttpServer(
        _echo,
        port=0,
        max_body_bytes=1000,
        limits=limits,
        exchanges=lambda cid: _streamed if cid == "stream" else None,
    )
    server.routes.add(Route("echo", "/"))
    server.routes.add(Route("stream", "/stream"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _exchange(server: HttpServer, data: bytes, timeout_s: float = 2.0) -> bytes:
    """Everything the server sends for ``data`` until it closes (or ``timeout_s``)."""
    reader, writer = await asyncio.open_connection(server.bind_host, server.port)
    writer.write(data)
    received = b""
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        received += b"<still open>"
    finally:
        writer.close()
    return received


async def test_pipelined_requests_are_answered_in_order_until_connection_close() -> None:
    async with _serving() as server:
        answer = await _exchange(
            server,
            b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n"
            b"GET /4?a=b%20c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            b"GET /never HTTP/1.1\r\nHost: t\r\n\r\n",
        )
    responses = answer.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert [r.split(b"\r\n")[0] for r in responses] == [
        b"X-Path: /1",
        b"X-Path: /2",
        b"X-Path: /3",
        b"X-Path: /4",
    ]
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in responses] == [b"<>", b"<abc>", b"<de>", b"<>"]
    assert b"X-Query: a=b c\r\n" in responses[3] and b"Connection: close\r\n" in responses[3]
    assert b"bogus" not in answer  # a component's Connection header is not sent
    assert b"Date: " in responses[0]
    assert answer.endswith(b"<>")  # closed after /4: /never is not answered


async def test_head_and_http_1_0() -> None:
    async with _serving() as server:
        head = await _exchange(server, b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n", 0.5)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 2\r\n" in head
        assert head.endswith(b"\r\n\r\n<still open>")  # no body, kept alive
        old = await _exchange(server, b"GET /o HTTP/1.0\r\n\r\n")
        assert old.startswith(b"HTTP/1.0 200 OK\r\n") and old.endswith(b"<>")  # then closed
        kept = await _exchange(server, b"GET /o HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0.5)
        assert b"Connection: keep-alive\r\n" in kept and kept.endswith(b"<><still open>")


async def test_expect_100_continue_is_answered_when_the_body_is_read() -> None:
    async with _serving() as server:
        reader, writer = await asyncio.open_connection(server.bind_host, server.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0) == (
            b"HTTP/1.1 100 Continue\r\n\r\n"
        )
        writer.write(b"ok")
        assert (await asyncio.wait_for(reader.readuntil(b"<ok>"), 2.0)).startswith(b"HTTP/1.1 200")
        writer.close()
        # A body refused before it is read gets no 100, and no wait for a body never sent.
        started = asyncio.get_running_loop().time()
        refused = await _exchange(
            server,
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
        )
        assert refused.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in refused
        assert asyncio.get_running_loop().time() - started < 1.0


async def test_head_limits_answer_414_and_431() -> None:
    limits = HttpLimits(max_line_bytes=100, max_field_bytes=50, max_headers=4)
    async with _serving(limits) as server:
        long_line = await _exchange(server, b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        assert long_line.startswith(b"HTTP/1.1 414 ")
        long_field = await _exchange(
            server, b"GET / HTTP/1.1\r\nHost: t\r\nX-A: " + b"v" * 60 + b"\r\n\r\n"
        )
        assert long_field.startswith(b"HTTP/1.1 431 ")
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(5))
        assert (await _exchange(server, b"GET / HTTP/1.1\r\n" + many + b"\r\n")).startswith(
            b"HTTP/1.1 431 "
        )
        assert (await _exchange(server, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        no_host = await _exchange(server, b"GET / HTTP/1.1\r\n\r\n")  # 1.0 needs none
        assert no_host.startswith(b"HTTP/1.1 400 ")
        assert server.server.rejected_heads == 5


async def test_a_malformed_body_is_400_and_ends_the_connection() -> None:
    async with _serving() as server:
        answer = await _exchange(
            server,
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
        )
    assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b"malformed request body\n")


async def test_streamed_answers_are_chunked_or_use_the_components_length() -> None:
    async with _serving() as server:
        chunked = await _exchange(server, b"GET /stream/chunked HTTP/1.1\r\nHost: t\r\n\r\n", 0.5)
        head, body = chunked.split(b"\r\n\r\n", 1)
        assert b"Transfer-Encoding: chunked" in head and b"Connection: x" not in head
        assert body == b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n<still open>"
        sized = await _exchange(server, b"GET /stream/length HTTP/1.1\r\nHost: t\r\n\r\n", 0.5)
        assert b"Content-Length: 5\r\n" in sized and b"chunked" not in sized
        assert sized.endswith(b"\r\n\r\nhello<still open>")
        # Broken after it started: closed without the final chunk, so it reads as cut.
        broken = await _exchange(server, b"GET /stream/abort HTTP/1.1\r\nHost: t\r\n\r\n")
        assert broken.endswith(b"7\r\npartial\r\n")


async def test_a_streamed_answer_never_breaks_the_length_it_announced() -> None:
    """A body short of its Content-Length is cut (the client would wait for the
    rest); one past it is refused before a byte past the length is sent."""
    async with _serving() as server:
        short = await _exchange(server, b"GET /stream/short HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"Content-Length: 10\r\n" in short and short.endswith(b"\r\n\r\nhello")
        long = await _exchange(server, b"GET /stream/long HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"Content-Length: 3\r\n" in long and long.endswith(b"\r\n\r\n")


async def test_a_client_that_half_closes_still_gets_its_answer() -> None:
    async with _serving() as server:
        reader, writer = await asyncio.open_connection(server.bind_host, server.port)
        writer.write(b"GET /half HTTP/1.1\r\nHost: t\r\n\r\n")
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 2.0)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"<>")


async def test_trailers_are_dropped_and_bounded() -> None:
    head = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n"
    async with _serving(HttpLimits(max_head_bytes=1024)) as server:
        fine = await _exchange(server, head + b"X-Trailer: 1\r\n\r\n", 0.5)
        assert fine.startswith(b"HTTP/1.1 200 ") and fine.endswith(b"<ab><still open>")
        flood = await _exchange(server, head + b"X-Trailer: " + b"v" * 4096)
    assert flood.startswith(b"HTTP/1.1 400 ") and flood.endswith(b"malformed request body\n")


async def test_heads_that_name_no_single_host_or_no_served_version_are_refused() -> None:
    async with _serving() as server:
        two_hosts = await _exchange(server, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert two_hosts.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        simple = await _exchange(server, b"GET /a\r\n\r\n")  # an HTTP/0.9 request
        assert simple.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
        assert server.server.rejected_heads == 2


async def test_an_absolute_form_target_names_the_host_routes_match() -> None:
    async with _serving() as server:
        server.routes.add(Route("stream", "/", host="b.example"))  # b.example: streamed
        answer = await _exchange(
            server,
            b"GET http://b.example/stream/length HTTP/1.1\r\nHost: a.example\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"hello")


async def test_a_client_that_does_not_read_its_answers_cannot_grow_the_write_buffer() -> None:
    """Pipelined requests whose answers are not read: the next one waits until the
    last answer is on its way, so the server holds about one answer per connection."""
    big = b"x" * 65536

    async def large(component_id: str, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, [], big)

    server = HttpServer(large, port=0)
    server.routes.add(Route("large", "/"))
    await server.start()
    try:
        _unread, writer = await asyncio.open_connection(server.bind_host, server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 300)  # ~19 MiB of answers
        await asyncio.sleep(1.0)
        (connection,) = server.server.connections
        transport = connection._transport
        assert transport is not None
        assert transport.get_write_buffer_size() < 4 * len(big)
        writer.close()
    finally:
        await server.stop()
