"""A host serving its HTTP port from two processes (host.dataplane), all real.

The daemon runs in the test's loop; its data-plane member is a real process.
The daemon accepts every connection and hands each to the process holding the
fewest, so requests on fresh connections are spread over both; what each
process served is read from its own instance pools (the daemon's directly, the
member's through its stats).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from host.control import component_key
from host.daemon import HostConfig, HostDaemon
from lattice.client import LatticeClient
from lattice.connection import NatsOptions
from lattice.messages import Link, ScaleComponent, http_route
from lattice.natsd import NatsServer
from lattice.process import process_alive
from tests.hosts import daemon_with_client

REQUESTS = 24


@pytest.fixture
async def lattice(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> AsyncIterator[tuple[HostDaemon, LatticeClient]]:
    config = HostConfig(
        nats=NatsOptions(nats_server.url),
        state_dir=tmp_path / "host",
        host_id="host-a",
        http_port=0,
        heartbeat_s=0.2,
        data_plane_processes=2,
    )
    async with daemon_with_client(config, compile_cache) as both:
        yield both


async def _get_all(url: str, count: int = REQUESTS) -> list[tuple[int, bytes]]:
    """``count`` GETs at once, each on a connection of its own."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> tuple[int, bytes]:
            async with http.get(url) as response:
                return response.status, await response.read()

        return await asyncio.gather(*(one() for _ in range(count)))


async def _member_stats(daemon: HostDaemon, component_id: str) -> tuple[int, int, int]:
    """The member's counts, once its next stats answer came in."""
    await asyncio.sleep(1.0)  # a few STATS_INTERVAL_S
    return daemon.dataplane.stats(component_id)


async def _deploy(
    daemon: HostDaemon, client: LatticeClient, component_id: str, source: Path, **scale: object
) -> str:
    await client.put_link(http_route(component_id, f"/{component_id}"))
    request = ScaleComponent(component_id=component_id, source=str(source), **scale)  # type: ignore[arg-type]
    await client.scale("host-a", request)
    return f"{daemon.http.url}/{component_id}"


async def test_both_processes_serve_and_the_inventory_counts_both(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    daemon, client = lattice
    (member_pid,) = daemon.dataplane.pids
    assert member_pid is not None and process_alive(member_pid) and member_pid != os.getpid()
    url = await _deploy(daemon, client, "echo", components["echo"])
    answers = await _get_all(url)
    assert all(status == 200 for status, _ in answers)
    here = daemon.runtime.get("echo").pool.invocations
    there, _, _ = await _member_stats(daemon, "echo")
    assert here > 0 and there > 0, (here, there)
    assert here + there == REQUESTS
    (echo,) = (await client.inventory("host-a")).components
    assert echo.invocations == REQUESTS


async def test_kept_alive_connections_are_spread_evenly_over_the_processes(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    daemon, client = lattice
    url = await _deploy(daemon, client, "hello", components["hello-wat"])
    # One after another, each answered and kept open: as a load generator's are.
    opened = [await _open(url, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") for _ in range(16)]
    try:
        assert [(await _answer(reader))[0] for reader, _ in opened] == [200] * 16
        assert daemon.http.server.open_connections == 8
        assert daemon.dataplane.connections == [8]
        assert daemon.runtime.get("hello").pool.invocations == 8
        there, _, _ = await _member_stats(daemon, "hello")
        assert there == 8
    finally:
        for _, writer in opened:
            writer.close()


async def test_link_change_and_stop_reach_every_process(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    daemon, client = lattice
    await client.put_link(Link(source_id="counter", target="keyvalue", config={"bucket": "dp1"}))
    url = await _deploy(daemon, client, "counter", components["counter"])
    assert all(status == 200 for status, _ in await _get_all(url))
    await client.put_link(Link(source_id="counter", target="keyvalue", config={"bucket": "dp2"}))
    for _ in range(100):
        if daemon.runtime.get("counter").spec.links[0].config["bucket"] == "dp2":
            break
        await asyncio.sleep(0.05)
    async with daemon.in_turn(component_key("counter")):
        pass  # the re-bind, members included, is done
    answers = await _get_all(url)
    # Every process counts in the new bucket: the counts are exactly 1..REQUESTS.
    counts = sorted(json.loads(body)["count"] for status, body in answers if status == 200)
    assert counts == list(range(1, REQUESTS + 1))
    there, _, _ = await _member_stats(daemon, "counter")
    assert there > 0  # the member served some of them
    await client.stop_component("host-a", "counter")
    assert {status for status, _ in await _get_all(url)} == {404}
    await asyncio.sleep(1.0)  # the member's next stats: it runs no counter any more
    assert daemon.dataplane.stats("counter") == (0, 0, 0)


async def test_deadlines_and_memory_caps_hold_in_every_process(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    daemon, client = lattice
    loop_url = await _deploy(
        daemon, client, "loop", components["loop"], deadline_s=1.0, max_concurrency=REQUESTS
    )
    hog_url = await _deploy(daemon, client, "hog", components["memhog"], memory_mb=32)
    assert {status for status, _ in await _get_all(loop_url)} == {504}
    assert {status for status, _ in await _get_all(hog_url, 8)} == {500}
    assert daemon.runtime.get("loop").pool.failures > 0
    _, failures, _ = await _member_stats(daemon, "loop")
    assert failures > 0


async def _open(url: str, request: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection of its own to ``url``'s host with ``request`` sent on it."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    return reader, writer


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One whole response: status, headers (lower-case names), body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(head[0].split()[1]), headers, body


async def _after_kill(reader: asyncio.StreamReader) -> str:
    """What an idle kept-alive connection sees: closed cleanly, reset, or still open."""
    try:
        async with asyncio.timeout(5.0):
            return "closed" if await reader.read(1) == b"" else "data"
    except TimeoutError:
        return "open"
    except ConnectionError:
        return "reset"


async def test_a_killed_members_requests_are_answered_503_and_it_comes_back(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    daemon, client = lattice
    loop_url = await _deploy(
        daemon, client, "loop", components["loop"], deadline_s=3.0, max_concurrency=REQUESTS
    )
    hello_url = await _deploy(daemon, client, "hello", components["hello-wat"])
    (old_pid,) = daemon.dataplane.pids
    assert old_pid is not None
    # Kept-alive connections with one request served each, then idle.
    idle = [await _open(hello_url, b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n") for _ in range(12)]
    assert [(await _answer(reader))[0] for reader, _ in idle] == [200] * len(idle)
    # Requests that run until their deadline, each on its own connection.
    post = b"POST /loop HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
    busy = [await _open(loop_url, post) for _ in range(REQUESTS)]
    try:
        await asyncio.sleep(1.0)
        os.kill(old_pid, signal.SIGKILL)
        started = time.monotonic()
        # Never hung, never cut: the member's are answered 503 once it is gone,
        # the daemon's 504 at their deadline.
        answers = await asyncio.wait_for(
            asyncio.gather(*(_answer(reader) for reader, _ in busy)), 10.0
        )
        assert time.monotonic() - started < 10.0
        statuses = [status for status, _, _ in answers]
        assert 503 in statuses and set(statuses) <= {503, 504}, statuses
        for status, headers, body in answers:
            if status == 503:
                assert headers["connection"] == "close"
                assert body == b"the process serving this request stopped; try again\n"
        # The member's idle connections are closed (not reset); the daemon's stay open.
        after = await asyncio.gather(*(_after_kill(reader) for reader, _ in idle))
        assert "closed" in after and set(after) <= {"closed", "open"}, after
    finally:
        for _, writer in idle + busy:
            writer.close()
    # Restarted with every component and route before it takes connections.
    for _ in range(300):
        (pid,) = daemon.dataplane.pids
        if pid not in (None, old_pid) and daemon.dataplane.ready:
            break
        await asyncio.sleep(0.1)
    assert daemon.dataplane.restarts == 1 and daemon.dataplane.ready
    assert {status for status, _ in await _get_all(hello_url)} == {200}
    hello_there, _, _ = await _member_stats(daemon, "hello")
    assert hello_there > 0


async def test_shutdown_stops_every_process(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> None:
    config = HostConfig(
        nats=NatsOptions(nats_server.url),
        state_dir=tmp_path / "host",
        host_id="host-b",
        http_port=0,
        data_plane_processes=3,
    )
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "compile-cache").symlink_to(compile_cache)
    daemon = await HostDaemon.start(config)
    pids = daemon.dataplane.pids
    assert len(pids) == 2 and all(pid is not None and process_alive(pid) for pid in pids)
    await daemon.shutdown()
    assert not any(pid is not None and process_alive(pid) for pid in pids)
