"""A host's bounds: labels, components, provider processes, and a heartbeat that always fits.

Pure checks first, then a real host on a real nats-server (one of them with a
small max payload, so the heartbeat has to be cut down to get out).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from host.bounds import HostBounds, check_label_put, check_labels, fit_inventory, inventory_size
from host.daemon import HostConfig, HostDaemon
from host.errors import LimitExceeded
from lattice.client import LatticeClient
from lattice.connection import Connection, NatsOptions, connect
from lattice.errors import RemoteError
from lattice.events import HostHeartbeat, decode_event
from lattice.messages import (
    ComponentDescription,
    HostInventory,
    ProviderDescription,
    ScaleComponent,
)
from lattice.natsd import NatsServer
from lattice.subjects import Subjects
from tests.lattice_procs import LATTICE
from tests.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]  # a fixture: imported to be found by pytest

SUBJECTS = Subjects()

# -- pure ----------------------------------------------------------------------------------


def test_label_bounds() -> None:
    limits = HostBounds()
    check_labels({"k" * 63: "v" * 255}, limits)
    with pytest.raises(LimitExceeded, match=r"label key 'kkk.*' is 64 characters, over the limit"):
        check_labels({"k" * 64: "v"}, limits)
    with pytest.raises(LimitExceeded, match="label 'k' has a value of 256 characters"):
        check_labels({"k": "v" * 256}, limits)
    with pytest.raises(LimitExceeded, match="65 annotations, over the limit of 64"):
        check_labels({str(i): "" for i in range(65)}, limits, "annotation")
    full = {str(i): "" for i in range(64)}
    check_label_put(full, "0", "replacing adds no label", limits)
    with pytest.raises(LimitExceeded, match="host has 64 labels, the limit"):
        check_label_put(full, "new", "v", limits)


def component(n: int, exports: int = 0, long_annotation: int = 0) -> ComponentDescription:
    annotations = {"app": "shop", "revision": "r1"}
    if long_annotation:
        annotations["note"] = "n" * long_annotation
    return ComponentDescription(
        component_id=f"c{n:03d}",
        source=f"/opt/wasm/c{n}.wasm",
        digest="d" * 64,
        count=1,
        max_concurrency=4,
        exports=[f"wasi:http/incoming-handler@0.2.{i}" for i in range(exports)],
        annotations=annotations,
    )


def inventory(components: list[ComponentDescription], labels: int = 3) -> HostInventory:
    return HostInventory(
        host_id="h",
        friendly_name="calm-otter",
        labels={f"label-{i:02d}": "v" * 200 for i in range(labels)},
        version="0",
        uptime_s=1.0,
        components=components,
        providers=[ProviderDescription(provider_id="p", kind="keyvalue-redis")],
    )


def test_an_inventory_that_fits_is_left_alone() -> None:
    whole = inventory([component(1, exports=3)])
    assert fit_inventory(whole, inventory_size(whole)) == (whole, [])
    assert fit_inventory(whole, 0) == (whole, [])  # no known limit


def test_exports_go_first_then_long_annotations() -> None:
    whole = inventory([component(i, exports=20, long_annotation=200) for i in range(10)])
    without_exports = whole.model_copy(
        update={"components": [c.model_copy(update={"exports": []}) for c in whole.components]}
    )
    fitted, left_out = fit_inventory(whole, inventory_size(without_exports))
    assert fitted == without_exports and left_out == ["the exports of 10 components"]
    fitted, left_out = fit_inventory(whole, inventory_size(without_exports) - 1)
    assert left_out == ["the exports of 10 components", "10 long annotations"]
    assert all(c.annotations == {"app": "shop", "revision": "r1"} for c in fitted.components)
    assert len(fitted.components) == 10


def test_then_components_past_those_that_fit_then_labels() -> None:
    whole = inventory([component(i) for i in range(200)], labels=10)
    budget = 8 * 1024
    fitted, left_out = fit_inventory(whole, budget)
    assert inventory_size(fitted) <= budget
    kept = len(fitted.components)
    assert 0 < kept < 200 and left_out[-1] == f"{200 - kept} of 200 components"
    assert fitted.components == whole.components[:kept]  # the head, in order
    assert fitted.labels == whole.labels and fitted.providers == whole.providers
    # A budget below the labels alone: no components, no providers, the labels that fit.
    fitted, left_out = fit_inventory(whole, 1200)
    assert inventory_size(fitted) <= 1200
    assert fitted.components == [] and fitted.providers == []
    assert 0 < len(fitted.labels) < 10 and left_out[-1].endswith("of 10 labels")


# -- a real host ----------------------------------------------------------------------------


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Connection]:
    connection = await connect(NatsOptions(nats_server.url))
    yield connection
    await connection.close()


@pytest.fixture
async def start_host(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Start and run host-a on ``nats_url`` (the test's server by default); stop at the end."""
    running: list[tuple[HostDaemon, asyncio.Task[None]]] = []

    async def start(nats_url: str | None = None, **fields: Any) -> HostDaemon:
        state = tmp_path / "host"
        state.mkdir(exist_ok=True)
        if not (state / "compile-cache").exists():
            (state / "compile-cache").symlink_to(compile_cache)
        config = HostConfig(
            nats=NatsOptions(nats_url or nats_server.url),
            state_dir=state,
            host_id="host-a",
            http_port=0,
            heartbeat_s=0.1,
            **fields,
        )
        daemon = await HostDaemon.start(config)
        running.append((daemon, asyncio.create_task(daemon.run(), name="host-a")))
        return daemon

    yield start
    for daemon, task in running:
        await daemon.shutdown()
        await task


async def heartbeats(nc: Connection, count: int, timeout_s: float = 5.0) -> list[HostInventory]:
    """The next ``count`` heartbeats."""
    queue: asyncio.Queue[HostInventory] = asyncio.Queue()

    async def on_event(msg: Any) -> None:
        event = decode_event(msg.data)
        assert isinstance(event, HostHeartbeat)
        queue.put_nowait(event.data)

    sub = await nc.subscribe(SUBJECTS.events("host_heartbeat"), cb=on_event)
    try:
        return [await asyncio.wait_for(queue.get(), timeout_s) for _ in range(count)]
    finally:
        await sub.unsubscribe()


async def test_a_600kb_label_is_refused_and_heartbeats_go_on(
    start_host: Callable[..., Any], nc: Connection
) -> None:
    daemon = await start_host()
    client = LatticeClient(nc)
    with pytest.raises(RemoteError, match="value of 614400 characters, over the limit of 255"):
        await client.put_label("host-a", "big", "x" * 600 * 1024)
    assert "big" not in daemon.labels
    beats = await heartbeats(nc, 3)
    assert all("big" not in beat.labels for beat in beats)
    with pytest.raises(RemoteError, match=r"label key 'kkkk.*' is 64 characters"):
        await client.put_label("host-a", "k" * 64, "v")


async def test_the_65th_label_is_refused(start_host: Callable[..., Any], nc: Connection) -> None:
    daemon = await start_host()
    client = LatticeClient(nc)
    for i in range(64 - len(daemon.labels)):
        await client.put_label("host-a", f"l{i}", "v" * 255)
    assert len(daemon.labels) == 64
    with pytest.raises(RemoteError, match="host has 64 labels, the limit"):
        await client.put_label("host-a", "one-more", "v")
    await client.put_label("host-a", "l0", "a new value")  # replacing is fine
    (beat,) = await heartbeats(nc, 1)
    assert len(beat.labels) == 64 and beat.labels["l0"] == "a new value"


async def test_labels_over_the_bounds_are_refused_at_start(
    start_host: Callable[..., Any], tmp_path: Path, nats_server: NatsServer
) -> None:
    with pytest.raises(LimitExceeded, match="label 'big' has a value of 300 characters"):
        await start_host(labels=["big=" + "x" * 300])
    result = await asyncio.to_thread(
        subprocess.run,
        [LATTICE, "host", "--nats-url", nats_server.url, "--state-dir", str(tmp_path / "cli")]
        + [arg for i in range(70) for arg in ("--label", f"l{i}=v")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "labels, over the limit of 64" in result.stderr


async def test_components_per_host_are_capped(
    start_host: Callable[..., Any], nc: Connection, components: dict[str, Path]
) -> None:
    daemon = await start_host(bounds=HostBounds(max_components=2))
    client = LatticeClient(nc)
    source = str(components["hello-wat"])
    for name in ("one", "two"):
        await client.scale("host-a", ScaleComponent(component_id=name, source=source))
    with pytest.raises(RemoteError, match="host runs 2 components, its limit"):
        await client.scale("host-a", ScaleComponent(component_id="three", source=source))
    # Scaling one that runs is no new component; stopping one makes room.
    await client.scale("host-a", ScaleComponent(component_id="two", source=source, count=2))
    await client.stop_component("host-a", "one")
    await client.scale("host-a", ScaleComponent(component_id="three", source=source))
    assert sorted(daemon.runtime.components) == ["three", "two"]
    with pytest.raises(RemoteError, match=r"annotation key 'aaaa.*' is 64 characters"):
        await client.scale(
            "host-a",
            ScaleComponent(component_id="two", source=source, annotations={"a" * 64: ""}),
        )


async def test_provider_processes_per_host_are_capped(
    start_host: Callable[..., Any], nc: Connection, redis_server: RedisServer
) -> None:
    daemon = await start_host(bounds=HostBounds(max_providers=1))
    client = LatticeClient(nc)
    first = redis_server.provider("kv-1")
    started = await client.start_provider("host-a", first)
    assert started.healthy
    assert (await client.start_provider("host-a", first)).pid == started.pid  # same: no-op
    with pytest.raises(RemoteError, match=r"host runs 1 provider processes, its limit"):
        await client.start_provider("host-a", redis_server.provider("kv-2"))
    assert sorted(daemon.supervisor.providers) == ["kv-1"]
    await client.stop_provider("host-a", "kv-1")
    assert (await client.start_provider("host-a", redis_server.provider("kv-2"))).healthy


async def test_a_heartbeat_over_the_max_payload_is_cut_down(
    start_host: Callable[..., Any], tmp_path: Path, components: dict[str, Path]
) -> None:
    """A server with a 16 KB max payload; two components with ~10 KB of annotations each."""
    config = tmp_path / "small.conf"
    config.write_text("max_payload: 16384\n")
    small = NatsServer(tmp_path / "small-nats", extra_args=["--config", str(config)]).start()
    try:
        daemon = await start_host(nats_url=small.url)
        nc = await connect(NatsOptions(small.url))
        try:
            client = LatticeClient(nc)
            notes = {f"note-{i:02d}": "n" * 250 for i in range(40)}
            for name in ("one", "two"):
                await client.scale(
                    "host-a",
                    ScaleComponent(
                        component_id=name,
                        source=str(components["hello-wat"]),
                        annotations={"app": "shop", **notes},
                    ),
                )
            beats = await heartbeats(nc, 3)
            last = beats[-1]
            assert [c.component_id for c in last.components] == ["one", "two"]
            assert all(c.annotations == {"app": "shop"} for c in last.components)
            assert (await client.inventory("host-a")).components == last.components
        finally:
            await nc.close()
            await daemon.shutdown()  # before its server goes
    finally:
        small.stop()
