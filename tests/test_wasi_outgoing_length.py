"""A wasi:http component's outgoing request is held to the Content-Length it declares.

As in wasmtime's own wasi-http host: a write that would take the body past the
declared length fails (``HTTP-request-body-size``, the bytes written), and
``outgoing-body.finish`` at another length fails the same way; such a request is
never sent (its ``future-incoming-response`` gets the error), so the remote never
sees a request whose framing lies. An invalid length is refused
(``outgoing-request.body``); a request sent without a body may declare only 0.
What goes out is framed by one Content-Length, the body's own.

The guest is tests/oclen_component (componentize-py, ``wasi:http/proxy``): it
makes the request the query describes and answers what each call returned. The
remote is a raw local HTTP server that records every byte it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from catalog.kinds import HTTP_CLIENT
from host.runtime.components import ComponentSpec, HostRuntime, LinkSpec
from host.runtime.loader import LoadPolicy
from host.runtime.pool import Limits
from providers.http_server import HttpServer, Route
from tests.guests import REPO, build_guest

# The vendored WASI packages, each after those it uses (componentize-py resolves them in order).
WASI = REPO / "providers" / "wit" / "deps"
WASI_DEPS = [WASI / f"wasi-{name}" for name in ("io", "clocks", "random", "filesystem")]
WASI_DEPS += [WASI / f"wasi-{name}" for name in ("sockets", "cli", "http")]
SIZE = "ErrorCode_HttpRequestBodySize"
MAX_REQUEST_BYTES = 65536  # the link's cap on a request body


@dataclass
class Connection:
    """Everything one connection to the remote carried, and whether it is over."""

    data: bytearray = field(default_factory=bytearray)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def request(self) -> tuple[str, list[tuple[str, str]], bytes]:
        """The request line, the headers, and every byte after the head."""
        head, _, body = bytes(self.data).partition(b"\r\n\r\n")
        line, *lines = head.decode("latin-1").split("\r\n")
        headers = [(k.strip().lower(), v.strip()) for k, _, v in (x.partition(":") for x in lines)]
        return line, headers, body


@dataclass
class Remote:
    """A raw HTTP/1.1 server: reads a request's head and the body its (first)
    Content-Length declares, answers 200 "ok" and closes, recording all it received."""

    authority: str
    connections: list[Connection]

    async def settled(self) -> list[Connection]:
        """The connections, once each is over (the client closed it, or 2 s of quiet)."""
        for conn in self.connections:
            await asyncio.wait_for(conn.closed.wait(), 5.0)
        return self.connections


def _declared(head: bytes) -> int:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return int(value.strip()) if value.strip().isdigit() else 0
    return 0


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    connections: list[Connection] = []
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        conn = Connection()
        connections.append(conn)

        async def more() -> bool:
            chunk = await asyncio.wait_for(reader.read(65536), 2.0)
            conn.data += chunk
            return bool(chunk)

        try:
            while b"\r\n\r\n" not in conn.data:
                if not await more():
                    return
            head, _, _ = bytes(conn.data).partition(b"\r\n\r\n")
            while len(conn.data) - len(head) - 4 < _declared(head):
                if not await more():
                    return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            while await more():  # anything past the body, until the client closes
                pass
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            conn.closed.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Remote(f"127.0.0.1:{port}", connections)
    finally:
        server.close()
        await server.wait_closed()
        for task in handlers:
            task.cancel()
        for task in handlers:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture(scope="session")
def oclen_guest() -> Path:
    return build_guest("oclen", "oclentest:guest/oclen@0.1.0", WASI_DEPS)


@pytest.fixture
async def served(compile_cache: Path, oclen_guest: Path) -> AsyncIterator[aiohttp.ClientSession]:
    runtime = HostRuntime(compile_cache, load_policy=LoadPolicy.of([oclen_guest.parent]))
    http = HttpServer(runtime.handle_http, port=0, exchanges=runtime.http_exchange)
    await http.start()
    link = LinkSpec(
        HTTP_CLIENT,
        {
            "allow": "http://127.0.0.1:*",
            "first_byte_timeout_s": "3",
            "max_request_bytes": str(MAX_REQUEST_BYTES),
        },
    )
    spec = ComponentSpec("oclen", str(oclen_guest), limits=Limits(deadline_s=8.0), links=(link,))
    await runtime.start(spec)
    http.routes.add(Route("oclen", "/oclen"))
    try:
        async with aiohttp.ClientSession(http.url) as session:
            yield session
    finally:
        await http.stop()
        await runtime.close()


async def fetch(
    http: aiohttp.ClientSession,
    remote: Remote,
    cl: Sequence[str] = (),
    write: Sequence[int] = (),
    **flags: str,
) -> list[str]:
    """The guest's lines for one outgoing request to ``remote`` (see the guest's docstring)."""
    sizes = ",".join(str(size) for size in write)
    query = {"to": f"http://{remote.authority}/upload", "cl": list(cl), "write": sizes, **flags}
    async with http.get(f"/oclen?{urlencode(query, doseq=True)}") as response:
        assert response.status == 200
        return (await response.text()).splitlines()


@pytest.mark.parametrize("early", ["", "1"], ids=["handle-after", "handle-first"])
async def test_short_body_fails_at_finish_and_is_never_sent(
    served: aiohttp.ClientSession, remote: Remote, early: str
) -> None:
    lines = await fetch(served, remote, cl=["100"], write=[30, 20], early=early)
    assert lines == [
        f"finish failed: {SIZE} 50",
        f"response failed: {SIZE} 50",
    ]
    assert await remote.settled() == []


@pytest.mark.parametrize("early", ["", "1"], ids=["handle-after", "handle-first"])
async def test_long_body_write_is_refused_and_nothing_is_sent(
    served: aiohttp.ClientSession, remote: Remote, early: str
) -> None:
    # The first chunk fits; the second would pass the length: refused, counted.
    lines = await fetch(served, remote, cl=["10"], write=[6, 12], early=early)
    assert lines == [
        f"write failed: {SIZE} 18",
        f"finish failed: {SIZE} 18",
        f"response failed: {SIZE} 18",
    ]
    assert await remote.settled() == []


async def test_exact_body_goes_out_framed_by_its_one_length(
    served: aiohttp.ClientSession, remote: Remote
) -> None:
    size = 10_000
    body = b"a" * 4000 + b"b" * 6000
    # Declared once, twice alike, and with spaces around it: one length on the wire.
    for declared in (["10000"], ["10000", "10000"], [" 10000 "]):
        lines = await fetch(served, remote, cl=declared, write=[4000, 6000], early="1")
        assert lines == ["finish ok", "response: 200 ok"], declared
    for conn in await remote.settled():
        line, headers, received = conn.request()
        assert line == "POST /upload HTTP/1.1"
        assert [v for k, v in headers if k == "content-length"] == [str(size)]
        assert "transfer-encoding" not in dict(headers)
        assert received == body  # exactly the body: nothing before, nothing past it
    assert len(remote.connections) == 3


async def test_without_content_length_the_body_is_sent_as_written(
    served: aiohttp.ClientSession, remote: Remote
) -> None:
    lines = await fetch(served, remote, write=[4000, 6000])
    assert lines == ["finish ok", "response: 200 ok"]
    [conn] = await remote.settled()
    _, headers, received = conn.request()
    assert [v for k, v in headers if k == "content-length"] == ["10000"]
    assert received == b"a" * 4000 + b"b" * 6000


@pytest.mark.parametrize("declared", [["ten"], ["-1"], ["5", "6"], [str(2**64)]])
async def test_invalid_content_length_refuses_the_body(
    served: aiohttp.ClientSession, remote: Remote, declared: list[str]
) -> None:
    # As wasmtime: outgoing-request.body refuses it. Sent without a body, the
    # request still cannot be framed by it.
    lines = await fetch(served, remote, cl=declared, write=[5])
    assert lines == ["body refused", "handle failed: ErrorCode_HttpProtocolError"]
    assert await remote.settled() == []


async def test_a_request_without_a_body_may_declare_only_zero(
    served: aiohttp.ClientSession, remote: Remote
) -> None:
    assert await fetch(served, remote, cl=["5"], nobody="1") == [f"handle failed: {SIZE} 0"]
    assert await remote.settled() == []
    assert await fetch(served, remote, cl=["0"], nobody="1") == ["response: 200 ok"]
    [conn] = await remote.settled()
    line, _, received = conn.request()
    assert line == "GET /upload HTTP/1.1" and received == b""


async def test_a_body_past_the_cap_is_never_sent_cut_short(
    served: aiohttp.ClientSession, remote: Remote
) -> None:
    # No declared length: the link's cap refuses the write that crosses it, and
    # the body, no longer what the guest wrote, is not sent without its tail.
    lines = await fetch(served, remote, write=[MAX_REQUEST_BYTES + 1])
    assert lines == [
        f"write failed: {SIZE} None",
        f"finish failed: {SIZE} None",
        f"response failed: {SIZE} None",
    ]
    assert await remote.settled() == []
