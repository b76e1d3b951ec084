"""Beyond one server: three clustered nats-servers (routes), one host on each, one lattice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.errors import LatticeError
from lattice.messages import Link, ScaleComponent, http_route
from lattice.natsd import NatsServer, free_port
from tests.lattice_procs import HostProcess, wait_for_hosts


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NatsServer]]:
    cluster_ports = [free_port() for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports)
    servers = []
    try:
        for n, cluster_port in enumerate(cluster_ports):
            servers.append(
                NatsServer(
                    tmp_path / f"nats-{n}",
                    name=f"node-{n}",
                    extra_args=[
                        "--cluster_name",
                        "wl",
                        "--cluster",
                        f"nats://127.0.0.1:{cluster_port}",
                        "--routes",
                        routes,
                    ],
                ).start()
            )
        yield servers
    finally:
        for server in servers:
            server.stop()


async def retry(action, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    """JetStream needs a meta leader after a cluster forms; retry until it has one."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await action()
        except LatticeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_hosts_on_different_servers_form_one_lattice(
    cluster: list[NatsServer], tmp_path: Path, compile_cache: Path, components: dict[str, Path]
) -> None:
    hosts = []
    for n, server in enumerate(cluster):
        hosts.append(
            HostProcess(
                server.url,
                tmp_path / f"host-{n}",
                f"site-{n}",
                {"site": str(n)},
                compile_cache=compile_cache,
            ).start()
        )
    nc = await connect(NatsOptions(cluster[0].url))
    try:
        client = LatticeClient(nc)
        await wait_for_hosts(client, {"site-0", "site-1", "site-2"}, timeout_s=30)
        await retry(
            lambda: client.put_link(
                Link(source_id="counter", target="keyvalue", config={"bucket": "cluster-count"})
            )
        )
        await client.put_link(http_route("counter", "/"))
        # Asked through server 0, run on the host attached to server 2.
        await retry(
            lambda: client.scale(
                "site-2", ScaleComponent(component_id="counter", source=str(components["counter"]))
            )
        )
        async with aiohttp.ClientSession() as http:
            for expected in (1, 2):
                async with http.get(f"{hosts[2].http_url}/") as response:
                    assert await response.text() == f'{{"count": {expected}}}'
        inventory = await client.inventory("site-2")
        assert [c.component_id for c in inventory.components] == ["counter"]
    finally:
        await nc.close()
        for host in hosts:
            host.stop()
