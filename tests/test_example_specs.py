"""Every example spec in examples/specs, applied with `lattice apply` to a real lattice."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from controller.service import Controller
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.natsd import NatsServer
from lattice.specs import SpecStore
from tests.lattice_procs import LATTICE, HostProcess, host_processes, wait_for_hosts
from tests.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]  # a fixture: imported to be found by pytest

SPECS = Path(__file__).resolve().parent.parent / "examples" / "specs"


@pytest.fixture
def hosts(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> Iterator[dict[str, HostProcess]]:
    labels = {"edge-eu": {"zone": "eu", "role": "edge"}, "core-us": {"zone": "us"}}
    with host_processes(
        nats_server.url, tmp_path, labels, heartbeat_s=0.3, compile_cache=compile_cache
    ) as procs:
        yield procs


@pytest.fixture
async def specs(
    nats_server: NatsServer, hosts: dict[str, HostProcess], components: dict[str, Path]
) -> AsyncIterator[SpecStore]:
    nc = await connect(NatsOptions(nats_server.url))
    await wait_for_hosts(LatticeClient(nc), set(hosts))
    controller = Controller(nc, host_timeout_s=1.0, tick_s=0.2)
    await controller.start()
    task = asyncio.create_task(controller.run(), name="controller")
    try:
        yield SpecStore(nc, LatticeClient(nc).subjects)
    finally:
        controller.request_stop()
        await task
        await nc.close()


def apply(nats_url: str, spec: Path) -> str:
    result = subprocess.run(
        [LATTICE, "apply", "-f", str(spec), "--nats-url", nats_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def until(check, what: str, timeout_s: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout_s} s")


async def fetch(url: str, data: bytes | None = None) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.request("POST" if data else "GET", url, data=data) as response,
    ):
        return response.status, await response.text()


async def deployed(store: SpecStore, app: str) -> bool:
    record = await store.get_status(app)
    return bool(record and record.state == "deployed")


async def test_every_example_spec_runs(
    specs: SpecStore,
    hosts: dict[str, HostProcess],
    nats_server: NatsServer,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    applied = sorted(p.name for p in SPECS.glob("*.yaml"))
    assert applied == [
        "counter.yaml",
        "daemon.yaml",
        "greeter.yaml",
        "hello.yaml",
        "redis-counter.yaml",
    ]
    for name in applied:
        spec = SPECS / name
        if name == "redis-counter.yaml":
            spec = on_this_redis(spec, redis_server.url, tmp_path)
        output = await asyncio.to_thread(apply, nats_server.url, spec)
        assert "deployed" in output
    for app in ("hello", "counter-app", "echo-edge", "greet", "tally"):
        await until(lambda app=app: deployed(specs, app), f"{app} deployed")
    eu, us = hosts["edge-eu"].http_url, hosts["core-us"].http_url

    async def hello_answers() -> bool:
        return (await fetch(f"{eu}/"))[1] == "Hello from wasmlattice!\n"

    await until(hello_answers, "hello")
    status, text = await fetch(f"{eu}/counter")
    assert status == 200 and '"count"' in text
    assert await fetch(f"{eu}/echo", b"edge") == (200, "edge")  # daemon: role=edge only
    # us has no echo replica: /echo there falls through to hello's "/" route.
    assert (await fetch(f"{us}/echo", b"edge"))[1] == "Hello from wasmlattice!\n"
    status, text = await fetch(f"{eu}/greet?name=Ada")
    assert status == 200, text
    assert '"served_by": "the us zone"' in text  # front on eu called greeter on us
    # tally: the counter on both hosts, its Redis provider on the eu host.
    assert await fetch(f"{us}/tally") == (200, '{"count": 1}')
    assert await fetch(f"{eu}/tally") == (200, '{"count": 2}')
    (eu_host,) = [h for h in await LatticeClient(specs.nc).hosts() if h.providers]
    assert eu_host.host_id == "edge-eu"


def on_this_redis(spec: Path, redis_url: str, tmp_path: Path) -> Path:
    """A copy of ``spec`` using the test's redis-server, its image paths made absolute."""
    text = spec.read_text().replace("redis://127.0.0.1:6379/0", redis_url)
    text = text.replace("../../build/", f"{spec.parent.parent.parent}/build/")
    copy = tmp_path / spec.name
    copy.write_text(text)
    return copy
