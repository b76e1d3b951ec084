"""A wasi:http component's response is held to the Content-Length it declares.

As in wasmtime's own wasi-http host: a write that would take the body past the
declared length fails (``HTTP-response-body-size``) and nothing past it reaches
the client; ``outgoing-body.finish`` short of it fails the same way and the
response is broken off (a 500 when nothing was sent yet, else the connection is
cut), so the client is never left waiting for bytes that will not come; an
invalid length is refused (``outgoing-response.body``, and at
``response-outparam.set`` with the problem named in the log).

The guest is tests/clen_component (componentize-py, ``wasi:http/proxy``): it
declares what the query says, writes the chunks it names and prints what each
call returned. The client reads raw bytes, so the framing is checked as sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from host.runtime.components import ComponentSpec, HostRuntime
from host.runtime.loader import LoadPolicy
from host.runtime.pool import Limits
from host.runtime.wasi.http_response import HOLD_BYTES
from providers.http_server import HttpServer, Route
from tests.guests import REPO, build_guest

# The vendored WASI packages, each after those it uses (componentize-py resolves them in order).
WASI = REPO / "providers" / "wit" / "deps"
WASI_DEPS = [WASI / f"wasi-{name}" for name in ("io", "clocks", "random", "filesystem")]
WASI_DEPS += [WASI / f"wasi-{name}" for name in ("sockets", "cli", "http")]
SIZE_ERROR = "ErrorCode_HttpResponseBodySize"


@pytest.fixture(scope="session")
def clen_guest() -> Path:
    return build_guest("clen", "clentest:guest/clen@0.1.0", WASI_DEPS)


@pytest.fixture
async def server(compile_cache: Path, clen_guest: Path) -> AsyncIterator[HttpServer]:
    runtime = HostRuntime(compile_cache, load_policy=LoadPolicy.of([clen_guest.parent]))
    http = HttpServer(runtime.handle_http, port=0, exchanges=runtime.http_exchange)
    await http.start()
    await runtime.start(ComponentSpec("clen", str(clen_guest), limits=Limits(deadline_s=5.0)))
    http.routes.add(Route("clen", "/clen"))
    try:
        yield http
    finally:
        await http.stop()
        await runtime.close()


@pytest.fixture
def printed(caplog: pytest.LogCaptureFixture) -> Printed:
    caplog.set_level(logging.INFO)  # the guest's lines, and the server's log of failures
    return Printed(caplog)


@dataclass
class Printed:
    """What the guest printed (its stdout reaches the host log line by line)."""

    caplog: pytest.LogCaptureFixture

    async def lines(self, count: int) -> list[str]:
        """The guest's lines, once there are ``count`` of them (or after 5 s)."""
        for _ in range(500):
            lines = [
                r.getMessage().removeprefix("[clen] stdout: ")
                for r in self.caplog.records
                if r.name == "wasmlattice.component" and "[clen] stdout" in r.getMessage()
            ]
            if len(lines) >= count:
                return lines
            await asyncio.sleep(0.01)
        return lines


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes  # every byte after the head
    open: bool  # the connection was still open when the client stopped listening


async def ask(server: HttpServer, query: str, method: str = "GET", quiet_s: float = 0.5) -> Answer:
    """One request on its own connection: all the server sends until it closes the
    connection or says nothing for ``quiet_s`` (a keep-alive connection at rest, or
    a client left waiting)."""
    reader, writer = await asyncio.open_connection(server.bind_host, server.port)
    writer.write(f"{method} /clen?{query} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    received, open_ = b"", True
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), quiet_s if received else 10.0)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                open_ = False
                break
            received += chunk
    finally:
        writer.close()
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return Answer(int(status_line.split()[1]), headers, body, open_)


async def test_a_body_finished_short_is_refused_and_the_client_gets_a_500(
    server: HttpServer, printed: Printed
) -> None:
    """All of it was held back when the guest finished: nothing was sent, so the
    client gets a 500 rather than a head promising 100 bytes."""
    answer = await ask(server, "cl=100&write=50")
    assert answer.status == 500 and answer.body == b"the component failed\n"
    assert answer.open  # a whole answer: the connection stays usable
    assert await printed.lines(1) == [f"finish failed: {SIZE_ERROR} 50"]


async def test_a_body_finished_short_after_its_head_went_out_is_cut(
    server: HttpServer, printed: Printed
) -> None:
    """The guest waited before finishing, so the head and its 50 bytes were sent:
    the connection is cut, and the client is not left waiting for 50 more."""
    answer = await ask(server, "cl=100&write=50&pause=300", quiet_s=2.0)
    assert answer.status == 200 and answer.headers["content-length"] == "100"
    assert answer.body == b"a" * 50
    assert not answer.open
    assert await printed.lines(1) == [f"finish failed: {SIZE_ERROR} 50"]


async def test_a_write_past_the_length_is_refused_and_never_sent(
    server: HttpServer, printed: Printed
) -> None:
    answer = await ask(server, "cl=10&write=5,10")
    assert answer.status == 500 and b"b" not in answer.body
    # wasmtime counts the refused write in: 15 bytes for a body of 10.
    assert await printed.lines(2) == [
        f"write failed: {SIZE_ERROR} 15",
        f"finish failed: {SIZE_ERROR} 15",
    ]


async def test_a_write_past_the_length_after_the_head_went_out_cuts_the_connection(
    server: HttpServer, printed: Printed
) -> None:
    answer = await ask(server, "cl=10&write=5,10&pause=300", quiet_s=2.0)
    assert answer.status == 200 and answer.headers["content-length"] == "10"
    assert answer.body == b"aaaaa" and not answer.open  # nothing past the length, and cut
    assert await printed.lines(2) == [
        f"write failed: {SIZE_ERROR} 15",
        f"finish failed: {SIZE_ERROR} 15",
    ]


async def test_a_body_of_exactly_the_declared_length_is_answered(
    server: HttpServer, printed: Printed
) -> None:
    answer = await ask(server, "cl=12&write=5,7")
    assert answer.status == 200 and answer.headers["content-length"] == "12"
    assert answer.body == b"aaaaabbbbbbb" and answer.open
    # Two equal values are one length; HEAD gets the length and no body.
    assert (await ask(server, "cl=12&cl=12&write=12")).body == b"a" * 12
    head = await ask(server, "cl=12&write=12", method="HEAD")
    assert head.status == 200 and head.headers["content-length"] == "12" and head.body == b""
    assert await printed.lines(3) == ["finish ok"] * 3


async def test_a_streamed_body_of_exactly_the_declared_length_is_answered(
    server: HttpServer, printed: Printed
) -> None:
    size = 4 * HOLD_BYTES + 123  # past what the host holds back: sent as it is written
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        url = f"{server.url}/clen?cl={size}&write={size // 2},{size - size // 2}&pause=20"
        for _ in range(2):  # the same keep-alive connection, twice
            async with http.get(url) as response:
                assert response.status == 200 and response.content_length == size
                body = await response.read()
            assert body == b"a" * (size // 2) + b"b" * (size - size // 2)
    assert await printed.lines(2) == ["finish ok"] * 2


async def test_without_a_length_the_body_is_chunked_as_before(
    server: HttpServer, printed: Printed
) -> None:
    streamed = await ask(server, f"write={HOLD_BYTES},{HOLD_BYTES}&pause=20")
    assert streamed.status == 200 and streamed.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in streamed.headers and streamed.open
    assert streamed.body.endswith(b"0\r\n\r\n")
    whole = await ask(server, "write=3,4")  # held, then sent whole with its length
    assert whole.status == 200 and whole.headers["content-length"] == "7"
    assert whole.body == b"aaabbbb" and whole.open
    assert await printed.lines(2) == ["finish ok"] * 2


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("cl=ten", "b'ten' is not a non-negative integer"),
        ("cl=-1", "b'-1' is not a non-negative integer"),
        ("cl=5&cl=6", "differing values"),
    ],
)
async def test_an_invalid_length_is_refused_and_named(
    server: HttpServer,
    printed: Printed,
    caplog: pytest.LogCaptureFixture,
    query: str,
    problem: str,
) -> None:
    """``outgoing-response.body`` refuses it (as wasmtime's does); the response set
    without a body fails the exchange, and the log says what was wrong."""
    answer = await ask(server, f"{query}&write=5")
    assert answer.status == 500 and answer.open
    assert await printed.lines(1) == ["body refused"]
    assert any(problem in r.getMessage() for r in caplog.records), problem


async def test_a_response_without_a_body_must_declare_none(
    server: HttpServer, printed: Printed, caplog: pytest.LogCaptureFixture
) -> None:
    """A length with no body taken: fine for HEAD (the length of what GET would
    answer), a failure for GET (the client would wait for the bytes)."""
    head = await ask(server, "cl=7&nobody=1", method="HEAD")
    assert head.status == 200 and head.headers["content-length"] == "7" and head.open
    empty = await ask(server, "cl=0&nobody=1")
    assert empty.status == 200 and empty.body == b"" and empty.open
    get = await ask(server, "cl=7&nobody=1")
    assert get.status == 500 and get.open
    assert any("content-length 7 without a body" in r.getMessage() for r in caplog.records)
