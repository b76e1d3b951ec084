"""The control interface of one in-process host, against a real nats-server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import aiohttp.web
import pytest

from host.daemon import HostConfig, HostDaemon
from lattice.client import LatticeClient
from lattice.connection import NatsOptions
from lattice.errors import RemoteError, RequestTimeout
from lattice.events import ComponentScaleFailed, LatticeEvent
from lattice.messages import Link, LinkRef, Reply, ScaleComponent, decode, http_route
from lattice.natsd import NatsServer
from lattice.subjects import Subjects
from tests.hosts import daemon_with_client


@pytest.fixture
async def lattice(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> AsyncIterator[tuple[HostDaemon, LatticeClient]]:
    config = HostConfig(
        nats=NatsOptions(nats_server.url),
        state_dir=tmp_path / "host",
        host_id="host-a",
        labels=["zone=a"],
        http_port=0,
        heartbeat_s=0.2,
    )
    async with daemon_with_client(config, compile_cache) as both:
        yield both


async def test_ping_lists_the_host_with_labels(lattice: tuple[HostDaemon, LatticeClient]) -> None:
    _, client = lattice
    (host,) = await client.hosts()
    assert host.host_id == "host-a"
    assert host.labels["zone"] == "a" and "os" in host.labels and "arch" in host.labels


async def test_scale_link_route_and_inventory(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    daemon, client = lattice
    await client.put_link(http_route("echo", "/echo"))
    await client.scale(
        "host-a", ScaleComponent(component_id="echo", source=str(components["echo"]), count=2)
    )
    inventory = await client.inventory("host-a")
    (echo,) = inventory.components
    assert (echo.component_id, echo.count) == ("echo", 2)
    assert daemon.runtime.get("echo").pool.idle_instances == 2
    assert inventory.http_url is not None
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{inventory.http_url}/echo", data=b"hi") as response,
    ):
        assert await response.read() == b"hi"
    await client.stop_component("host-a", "echo")
    assert (await client.inventory("host-a")).components == []


async def test_link_change_rebinds_a_running_component(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    daemon, client = lattice
    # Without a keyvalue link the counter cannot start.
    with pytest.raises(RemoteError, match="wasi:keyvalue/store"):
        await client.scale(
            "host-a", ScaleComponent(component_id="counter", source=str(components["counter"]))
        )
    await client.put_link(Link(source_id="counter", target="keyvalue", config={"bucket": "c1"}))
    await client.scale(
        "host-a", ScaleComponent(component_id="counter", source=str(components["counter"]))
    )
    assert daemon.runtime.get("counter").spec.links[0].config["bucket"] == "c1"
    await client.put_link(Link(source_id="counter", target="keyvalue", config={"bucket": "c2"}))
    for _ in range(100):
        if daemon.runtime.get("counter").spec.links[0].config["bucket"] == "c2":
            break
        await asyncio.sleep(0.05)
    assert daemon.runtime.get("counter").spec.links[0].config["bucket"] == "c2"
    assert await client.delete_link(LinkRef(source_id="counter"))
    assert await client.links("counter") == []


async def test_named_config_and_labels(lattice: tuple[HostDaemon, LatticeClient]) -> None:
    daemon, client = lattice
    await client.put_config("app", {"greeting": "hi"})
    assert await client.get_config("app") == {"greeting": "hi"}
    assert await client.delete_config("app")
    assert await client.get_config("app") is None
    await client.put_label("host-a", "tier", "edge")
    assert (await client.hosts())[0].labels["tier"] == "edge"
    await client.delete_label("host-a", "tier")
    assert "tier" not in daemon.labels


async def test_events_are_published(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    _, client = lattice
    seen: list[LatticeEvent] = []

    async def tail() -> None:
        async for event in client.events():
            seen.append(event)

    tailer = asyncio.create_task(tail(), name="tail-events")
    await asyncio.sleep(0.1)
    await client.scale(
        "host-a", ScaleComponent(component_id="hello", source=str(components["hello-wat"]))
    )
    missing = str(components["hello"].parent / "nonexistent.wasm")  # in the artifact dirs
    with pytest.raises(RemoteError):
        await client.scale("host-a", ScaleComponent(component_id="bad", source=missing))
    await client.put_label("host-a", "k", "v")
    await asyncio.sleep(0.5)
    tailer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await tailer
    types = {e.type for e in seen}
    assert {
        "component_scaled",
        "component_scale_failed",
        "labels_changed",
        "host_heartbeat",
    } <= types
    failed = next(e for e in seen if isinstance(e, ComponentScaleFailed))
    assert "not found" in failed.data.error


@pytest.mark.parametrize(
    ("operation", "payload", "code", "fragment"),
    [
        ("component.scale", b"\xc1garbage", "bad_request", "not a msgpack message"),
        ("component.scale", b"\x93\x01\x02\x03", "bad_request", "expected a map"),
        ("component.scale", b"\x81\xa5count\xa3two", "bad_request", "component_id"),
        ("component.stop", b"\x81\xaccomponent_id\xa4nope", "not_found", "nope"),
        ("no.such.op", b"", "bad_request", "unknown operation"),
    ],
)
async def test_bad_control_messages_get_error_replies(
    lattice: tuple[HostDaemon, LatticeClient],
    operation: str,
    payload: bytes,
    code: str,
    fragment: str,
) -> None:
    _, client = lattice
    subject = Subjects().host_control("host-a", operation)
    msg = await client.nc.request(subject, payload, timeout=2)
    reply = decode(Reply, msg.data)
    assert not reply.ok and reply.code == code
    assert reply.error is not None and fragment in reply.error
    # The host is still there and answering.
    assert [h.host_id for h in await client.hosts()] == ["host-a"]


async def test_unknown_host_is_a_clear_error(lattice: tuple[HostDaemon, LatticeClient]) -> None:
    _, client = lattice
    with pytest.raises(RequestTimeout, match="no host ghost answered"):
        await client.inventory("ghost")


def test_host_ids_are_stable_per_state_dir_and_port(tmp_path: Path) -> None:
    from host.identity import stable_host_id

    first = stable_host_id(tmp_path, slot="8080")
    assert stable_host_id(tmp_path, slot="8080") == first  # kept across restarts
    assert stable_host_id(tmp_path, slot="8081") != first  # a second host here differs
    assert stable_host_id(tmp_path, "explicit", slot="8080") == "explicit"


async def test_events_cli_tails_live_events(
    lattice: tuple[HostDaemon, LatticeClient], nats_server: NatsServer
) -> None:
    import json

    tail = _start_events_tail(nats_server.url)
    try:
        _, client = lattice
        assert tail.stdout is not None
        line = ""
        for _ in range(50):  # keep changing labels until the tail has subscribed and prints
            await client.put_label("host-a", "tick", "tock")
            ready = await asyncio.to_thread(_readline_within, tail.stdout, 0.2)
            if ready:
                line = ready
                break
        event = json.loads(line)
        assert event["type"] == "labels_changed" and event["source"] == "host-a"
        assert event["data"]["labels"]["tick"] == "tock"
    finally:
        tail.terminate()
        tail.wait(10)


def _start_events_tail(nats_url: str) -> subprocess.Popen[str]:
    lattice_cli = str(Path(sys.executable).parent / "lattice")
    return subprocess.Popen(
        [lattice_cli, "events", "--nats-url", nats_url, "-o", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _readline_within(stream: object, seconds: float) -> str:
    import select

    ready, _, _ = select.select([stream], [], [], seconds)
    return stream.readline() if ready else ""  # type: ignore[attr-defined]


async def test_a_slow_start_holds_only_its_own_component(
    lattice: tuple[HostDaemon, LatticeClient], components: dict[str, Path]
) -> None:
    """Control requests for different components run side by side; one component's in order."""
    daemon, client = lattice
    release = asyncio.Event()
    fetched = asyncio.Event()

    async def slow_wasm(_request: aiohttp.web.Request) -> aiohttp.web.Response:
        fetched.set()
        await release.wait()
        return aiohttp.web.Response(body=components["hello-wat"].read_bytes())

    app = aiohttp.web.Application()
    app.router.add_get("/slow.wasm", slow_wasm)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        slow = asyncio.create_task(
            client.scale(
                "host-a",
                ScaleComponent(component_id="slow", source=f"http://127.0.0.1:{port}/slow.wasm"),
            )
        )
        await asyncio.wait_for(fetched.wait(), 10)
        # Another component starts while "slow" still waits for its wasm...
        await client.scale(
            "host-a", ScaleComponent(component_id="fast", source=str(components["hello-wat"]))
        )
        assert not slow.done()
        # ...and a stop of "slow" waits for its start, instead of running first.
        stop = asyncio.create_task(client.stop_component("host-a", "slow"))
        await asyncio.sleep(0.2)
        assert not stop.done()
        release.set()
        await slow
        await stop
        assert sorted(daemon.runtime.components) == ["fast"]
    finally:
        release.set()
        await runner.cleanup()
