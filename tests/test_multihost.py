"""Several host daemons (real processes) on real nats-servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.kv import open_bucket
from lattice.messages import Link, ScaleComponent, http_route
from lattice.natsd import NatsServer, free_port
from tests.lattice_procs import HostProcess, host_processes, wait_for_hosts

HEARTBEAT_S = 0.5
ZONES = {"host-1": "a", "host-2": "b", "host-3": "c"}


@pytest.fixture
def hosts(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> Iterator[dict[str, HostProcess]]:
    labels = {host_id: {"zone": zone} for host_id, zone in ZONES.items()}
    with host_processes(
        nats_server.url, tmp_path, labels, heartbeat_s=HEARTBEAT_S, compile_cache=compile_cache
    ) as procs:
        yield procs


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[LatticeClient]:
    nc = await connect(NatsOptions(nats_server.url))
    yield LatticeClient(nc)
    await nc.close()


async def get_text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def test_components_run_where_asked(
    hosts: dict[str, HostProcess], client: LatticeClient, components: dict[str, Path]
) -> None:
    await wait_for_hosts(client, set(hosts))
    await client.put_link(http_route("hello", "/"))
    hello = str(components["hello-wat"])
    await client.scale("host-2", ScaleComponent(component_id="hello", source=hello, count=2))
    await client.scale("host-3", ScaleComponent(component_id="hello", source=hello, count=1))
    inventories = {h.host_id: h for h in await client.hosts()}
    assert {
        h: [(c.component_id, c.count) for c in inv.components] for h, inv in inventories.items()
    } == {"host-1": [], "host-2": [("hello", 2)], "host-3": [("hello", 1)]}
    assert {h: inv.labels["zone"] for h, inv in inventories.items()} == ZONES
    assert await get_text(f"{hosts['host-2'].http_url}/") == (200, "Hello from wasmlattice!\n")
    assert (await get_text(f"{hosts['host-1'].http_url}/"))[0] == 404


async def test_killed_host_disappears_within_three_heartbeats(
    hosts: dict[str, HostProcess], client: LatticeClient
) -> None:
    await wait_for_hosts(client, set(hosts))
    hosts["host-2"].kill()
    killed_at = time.monotonic()
    while "host-2" in {h.host_id for h in await client.hosts(wait_s=0.1)}:
        assert time.monotonic() - killed_at < 3 * HEARTBEAT_S, "host-2 still listed"
    assert {h.host_id for h in await client.hosts()} == {"host-1", "host-3"}


async def test_graceful_stop_host(hosts: dict[str, HostProcess], client: LatticeClient) -> None:
    await wait_for_hosts(client, set(hosts))
    await client.stop_host("host-3")
    process = hosts["host-3"].process
    assert process is not None
    for _ in range(100):
        if process.poll() is not None:
            break
        await asyncio.sleep(0.1)
    assert process.returncode == 0
    assert {h.host_id for h in await client.hosts()} == {"host-1", "host-2"}


async def test_hosts_survive_a_nats_server_restart(
    tmp_path: Path, compile_cache: Path, components: dict[str, Path]
) -> None:
    port = free_port()
    server = NatsServer(tmp_path / "nats", port=port).start()
    host = HostProcess(
        server.url, tmp_path / "h", "survivor", heartbeat_s=HEARTBEAT_S, compile_cache=compile_cache
    ).start()
    nc = await connect(NatsOptions(server.url))
    try:
        client = LatticeClient(nc)
        await wait_for_hosts(client, {"survivor"})
        await client.put_link(
            Link(source_id="counter", target="keyvalue", config={"bucket": "restart"})
        )
        await client.put_link(http_route("counter", "/counter"))
        await client.scale(
            "survivor", ScaleComponent(component_id="counter", source=str(components["counter"]))
        )
        assert await get_text(f"{host.http_url}/counter") == (200, '{"count": 1}')
        server.stop()
        server = NatsServer(tmp_path / "nats", port=port).start()
        # The host reconnects by itself; JetStream kept the count on disk.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, body = await get_text(f"{host.http_url}/counter")
            if status == 200:
                break
            await asyncio.sleep(0.2)
        assert (status, body) == (200, '{"count": 2}')
        await wait_for_hosts(client, {"survivor"})
        assert [c.component_id for c in (await client.inventory("survivor")).components] == [
            "counter"
        ]
    finally:
        await nc.close()
        host.stop()
        server.stop()


async def test_host_stops_promptly_when_nats_is_gone(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    host = HostProcess(server.url, tmp_path / "h", "orphan", heartbeat_s=HEARTBEAT_S).start()
    nc = await connect(NatsOptions(server.url))
    try:
        await wait_for_hosts(LatticeClient(nc), {"orphan"})
    finally:
        await nc.close()
    server.stop()
    process = host.process
    assert process is not None
    started = time.monotonic()
    host.stop()  # SIGTERM; stop() falls back to SIGKILL after 15 s
    assert process.returncode == 0
    assert time.monotonic() - started < 12


async def test_restarted_host_rereads_links_and_config_from_jetstream(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path, components: dict[str, Path]
) -> None:
    """State that must survive a host restart lives in JetStream, not in the host."""
    nc = await connect(NatsOptions(nats_server.url))
    client = LatticeClient(nc)
    host = HostProcess(
        nats_server.url,
        tmp_path / "h",
        "phoenix",
        heartbeat_s=HEARTBEAT_S,
        compile_cache=compile_cache,
    ).start()
    try:
        await wait_for_hosts(client, {"phoenix"})
        await client.put_config("counting", {"counter_key": "restarts"})
        await client.put_link(
            Link(source_id="counter", target="keyvalue", config={"bucket": "phoenix"})
        )
        await client.put_link(http_route("counter", "/c"))
        request = ScaleComponent(
            component_id="counter", source=str(components["counter"]), config_names=["counting"]
        )
        await client.scale("phoenix", request)
        assert await get_text(f"{host.http_url}/c") == (200, '{"count": 1}')
        host.kill()
        host = HostProcess(
            nats_server.url,
            tmp_path / "h",
            "phoenix",
            heartbeat_s=HEARTBEAT_S,
            http_port=host.http_port,
        ).start()
        await wait_for_hosts(client, {"phoenix"})
        # The new process knows nothing but what the lattice tells it: links, named
        # config and the count all come back from JetStream.
        await client.scale("phoenix", request)
        assert await get_text(f"{host.http_url}/c") == (200, '{"count": 2}')
        bucket = await open_bucket(nc, "phoenix", create=False)
        assert await bucket.get("restarts") == b"2"
    finally:
        host.stop()
        await nc.close()
