"""Component-to-component calls in-process and across hosts, with one trace per request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.messages import Link, ScaleComponent, http_route
from lattice.natsd import NatsServer
from tests.lattice_procs import HostProcess, host_processes, wait_for_hosts
from tests.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]  # a fixture: imported to be found by pytest

GREETER_LINK = Link(
    source_id="front",
    target="greeter",
    namespace="wasmlattice",
    package="demo",
    interfaces=["greeter"],
)
FRONT_ROUTE = http_route("front", "/")


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    return tmp_path / "spans.jsonl"


@pytest.fixture
def two_hosts(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path, traces: Path
) -> Iterator[dict[str, HostProcess]]:
    with host_processes(
        nats_server.url,
        tmp_path,
        {"host-a": {}, "host-b": {}},
        heartbeat_s=0.5,
        compile_cache=compile_cache,
        env={"WASMLATTICE_TRACES": f"file:{traces}"},
    ) as procs:
        yield procs


@pytest.fixture
async def client(
    nats_server: NatsServer, two_hosts: dict[str, HostProcess]
) -> AsyncIterator[LatticeClient]:
    nc = await connect(NatsOptions(nats_server.url))
    client = LatticeClient(nc)
    await wait_for_hosts(client, set(two_hosts))
    await client.put_link(GREETER_LINK)
    await client.put_link(FRONT_ROUTE)
    yield client
    await nc.close()


async def get_json(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, json.loads(await response.text() or "{}")


async def start(client: LatticeClient, host: str, name: str, source: Path, **config: str) -> None:
    await client.scale(host, ScaleComponent(component_id=name, source=str(source), config=config))


async def test_call_crosses_hosts_and_comes_back(
    client: LatticeClient,
    two_hosts: dict[str, HostProcess],
    components: dict[str, Path],
) -> None:
    await start(client, "host-b", "greeter", components["greeter"], served_by="host-b")
    await start(client, "host-a", "front", components["front"])
    url = f"{two_hosts['host-a'].http_url}/?name=Ada&times=2&style=shout&tag=x&tag=y&signature=z"
    status, body = await get_json(url)
    assert status == 200, body
    assert body == {
        "text": "HELLO, ADA! HELLO, ADA! [x, y] -- z",
        "served_by": "host-b",
        "length": len("HELLO, ADA! HELLO, ADA! [x, y] -- z"),
    }
    # An error result crosses the wire as a value, not a failure.
    status, body = await get_json(f"{two_hosts['host-a'].http_url}/?name=")
    assert (status, body) == (400, {"error": "name must not be empty"})


async def test_local_replica_is_called_in_process(
    client: LatticeClient,
    two_hosts: dict[str, HostProcess],
    components: dict[str, Path],
) -> None:
    await start(client, "host-b", "greeter", components["greeter"], served_by="host-b")
    await start(client, "host-a", "greeter", components["greeter"], served_by="host-a")
    await start(client, "host-a", "front", components["front"])
    for _ in range(5):
        status, body = await get_json(f"{two_hosts['host-a'].http_url}/?name=Ada")
        assert (status, body["served_by"]) == (200, "host-a")


async def test_nothing_answers_is_a_500_and_the_host_keeps_serving(
    client: LatticeClient,
    two_hosts: dict[str, HostProcess],
    components: dict[str, Path],
) -> None:
    await start(client, "host-a", "front", components["front"])
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{two_hosts['host-a'].http_url}/?name=Ada") as response,
    ):
        assert response.status == 500
    assert "no host runs component greeter" in two_hosts["host-a"].log_text()
    await start(client, "host-b", "greeter", components["greeter"], served_by="host-b")
    status, body = await get_json(f"{two_hosts['host-a'].http_url}/?name=Ada")
    assert (status, body["served_by"]) == (200, "host-b")


def read_spans(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_one_request_is_one_trace_across_both_hosts(
    client: LatticeClient,
    two_hosts: dict[str, HostProcess],
    components: dict[str, Path],
    traces: Path,
) -> None:
    await start(client, "host-b", "greeter", components["greeter"], served_by="host-b")
    await start(client, "host-a", "front", components["front"])
    status, _ = await get_json(f"{two_hosts['host-a'].http_url}/?name=Trace")
    assert status == 200
    spans: list[dict[str, object]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = read_spans(traces)
        if any(s["name"] == "HTTP GET" for s in spans) and any(
            "greeter" in str(s["name"])
            and s["attributes"].get(  # type: ignore[union-attr]
                "wasmlattice.host"
            )
            == "host-b"
            for s in spans
        ):
            break
        await asyncio.sleep(0.1)
    root = next(s for s in spans if s["name"] == "HTTP GET")
    trace = [s for s in spans if s["trace_id"] == root["trace_id"]]
    hosts = {s["attributes"].get("wasmlattice.host") for s in trace}  # type: ignore[union-attr]
    assert hosts == {"host-a", "host-b"}
    by_id = {s["span_id"]: s for s in trace}
    # Every span but the root has its parent in the same trace: one tree.
    assert all(s["parent_id"] in by_id for s in trace if s is not root)
    names = [s["name"] for s in trace]
    assert "call front handle" in names and "call greeter greet" in names


async def test_a_provider_on_another_host_is_in_the_same_trace(
    client: LatticeClient,
    two_hosts: dict[str, HostProcess],
    components: dict[str, Path],
    traces: Path,
    redis_server: RedisServer,
) -> None:
    """HTTP on host-a -> counter -> keyvalue provider process on host-b: one trace."""
    await client.start_provider(
        "host-b",
        redis_server.provider("kv"),
    )
    await client.put_link(
        Link(
            source_id="counter",
            target="keyvalue",
            interfaces=["store", "atomics"],
            config={"provider": "kv", "bucket": "traced"},
        )
    )
    await client.put_link(http_route("counter", "/counter"))
    await start(client, "host-a", "counter", components["counter"])
    status, body = await get_json(f"{two_hosts['host-a'].http_url}/counter")
    assert (status, body) == (200, {"count": 1})

    def provider_span(spans: list[dict[str, object]]) -> dict[str, object] | None:
        return next((s for s in spans if s["name"] == "provider kv keyvalue"), None)

    deadline = time.monotonic() + 10
    spans = read_spans(traces)
    while provider_span(spans) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # spans reach the file as the processes export them
        spans = read_spans(traces)
    served = provider_span(spans)
    assert served is not None, [s["name"] for s in spans]
    trace = [s for s in spans if s["trace_id"] == served["trace_id"]]
    by_id = {s["span_id"]: s for s in trace}
    # The provider's span hangs under the host's client span, under the component call.
    client_side = by_id[served["parent_id"]]
    assert client_side["name"] == "keyvalue increment via provider kv"
    assert by_id[client_side["parent_id"]]["name"] == "call counter handle"
    names = {s["name"] for s in trace}
    assert "HTTP GET" in names
    hosts = {s["attributes"].get("wasmlattice.host") for s in trace}  # type: ignore[union-attr]
    assert {"host-a", "host-b"} <= hosts
