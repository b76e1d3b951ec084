"""The http-server provider over real HTTP, in front of real components."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from host.runtime.components import ComponentSpec, HostRuntime
from host.runtime.pool import Limits
from providers.http_server import HttpServer, Route, RouteTable
from providers.keyvalue import MemoryKeyValue


@pytest.fixture
async def served(
    compile_cache: Path, components: dict[str, Path]
) -> AsyncIterator[tuple[HttpServer, aiohttp.ClientSession]]:
    runtime = HostRuntime(compile_cache, {"memory": MemoryKeyValue()}, "memory")
    server = HttpServer(runtime.handle_http, port=0, max_body_bytes=1024)
    await server.start()
    specs = [
        (ComponentSpec("hello", str(components["hello-wat"])), Route("hello", "/")),
        (ComponentSpec("echo", str(components["echo"])), Route("echo", "/echo")),
        (ComponentSpec("trap", str(components["trap"])), Route("trap", "/trap")),
        (
            ComponentSpec("loop", str(components["loop"]), limits=Limits(deadline_s=1.0)),
            Route("loop", "/loop"),
        ),
        (ComponentSpec("vhost", str(components["echo"])), Route("vhost", "/", host="example.test")),
    ]
    for spec, route in specs:
        await runtime.start(spec)
        server.routes.add(route)
    async with aiohttp.ClientSession(server.url) as session:
        yield server, session
    await server.stop()
    await runtime.close()


async def test_hello_over_http(served: tuple[HttpServer, aiohttp.ClientSession]) -> None:
    _, http = served
    async with http.get("/anything") as response:
        assert response.status == 200
        assert await response.text() == "Hello from wasmlattice!\n"


async def test_longest_prefix_and_body(served: tuple[HttpServer, aiohttp.ClientSession]) -> None:
    _, http = served
    async with http.post("/echo/x", data=b"ping") as response:
        assert response.status == 200
        assert await response.read() == b"ping"


async def test_host_header_routes(served: tuple[HttpServer, aiohttp.ClientSession]) -> None:
    _, http = served
    async with http.post("/", data=b"vhost", headers={"Host": "example.test"}) as response:
        assert await response.read() == b"vhost"


async def test_no_route_is_404(compile_cache: Path) -> None:
    runtime = HostRuntime(compile_cache)
    server = HttpServer(runtime.handle_http, port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession(server.url) as http, http.get("/x") as response:
            assert response.status == 404
            assert "no component is routed at /x" in await response.text()
    finally:
        await server.stop()
        await runtime.close()


async def test_oversized_body_is_413(served: tuple[HttpServer, aiohttp.ClientSession]) -> None:
    _, http = served
    async with http.post("/echo", data=b"x" * 2048) as response:
        assert response.status == 413


async def test_trap_is_500_without_internals(
    served: tuple[HttpServer, aiohttp.ClientSession],
) -> None:
    _, http = served
    async with http.get("/trap") as response:
        assert response.status == 500
        text = await response.text()
    assert text == "the component failed\n"
    assert "unreachable" not in text and "wasm" not in text


async def test_loop_is_504_and_does_not_block_others(
    served: tuple[HttpServer, aiohttp.ClientSession],
) -> None:
    _, http = served

    async def get(path: str) -> int:
        async with http.get(path) as response:
            return response.status

    looping = asyncio.create_task(get("/loop"))
    await asyncio.sleep(0.1)
    statuses = []
    while not looping.done():
        statuses.append(await get("/"))
    assert await looping == 504
    assert len(statuses) > 5 and set(statuses) == {200}


def test_route_lookup_is_the_most_specific_matching_route() -> None:
    """The table's lookup picks what ``Route.matches`` and specificity say."""
    routes = [
        Route("root", "/"),
        Route("api", "/api/"),
        Route("api-v1", "/api/v1"),
        Route("host-root", "/", "example.com"),
        Route("host-api", "/api", "example.com"),
    ]
    table = RouteTable()
    for route in routes:
        table.add(route)
    hosts = ["example.com", "other.org", ""]
    paths = ["/", "", "/api", "/api/", "/api/v1", "/api/v1/x", "/apix", "/api/v10", "/x/api"]
    for host in hosts:
        for path in paths:
            matching = [r for r in routes if r.matches(host, path)]
            expected = max(matching, key=Route.specificity) if matching else None
            assert table.lookup(host, path) == expected, (host, path)
    table.remove_component("root")
    assert table.lookup("other.org", "/x") is None
    assert table.lookup("other.org", "/api/x") == Route("api", "/api/")
