"""The controller on real processes: a nats-server, three labelled hosts, specs applied.

Specs are wadm-style OAM manifests written by the tests into a temp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from catalog import annotations as annotation
from controller.reconcile import Plan
from controller.service import Controller
from deploy.manifest import load_manifest_file
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.lease import Lease
from lattice.natsd import NatsServer
from lattice.specs import SpecError, SpecStore
from tests.lattice_procs import LATTICE, HostProcess, host_processes, wait_for_hosts
from tests.redis_fixture import RedisServer, redis_server

__all__ = ["redis_server"]  # a fixture: imported to be found by pytest

HEARTBEAT_S = 0.3
HOST_TIMEOUT_S = 1.0
LABELS = {"eu-1": "eu", "eu-2": "eu", "us-1": "us"}


def http_route_capability(target: str, path: str) -> str:
    """An http-server capability (a spec.components item) routing ``path`` to ``target``."""
    return f"""\
    - name: httpserver
      type: capability
      properties:
        image: ghcr.io/wasmcloud/http-server:0.27.0
      traits:
        - type: link
          properties:
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            target:
              name: {target}
            source:
              config:
                - name: route
                  properties:
                    path: {path}
"""


def manifest(name: str, version: str, source: Path, instances: int = 3, path: str = "/") -> str:
    return f"""\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: {version}
spec:
  components:
    - name: web
      type: component
      properties:
        image: {source}
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}
            spread:
              - name: eu
                requirements:
                  zone: eu
                weight: 2
              - name: us
                requirements:
                  zone: us
                weight: 1
""" + http_route_capability("web", path)


@pytest.fixture
def hosts(
    nats_server: NatsServer, tmp_path: Path, compile_cache: Path
) -> Iterator[dict[str, HostProcess]]:
    labels = {host_id: {"zone": zone} for host_id, zone in LABELS.items()}
    with host_processes(
        nats_server.url, tmp_path, labels, heartbeat_s=HEARTBEAT_S, compile_cache=compile_cache
    ) as procs:
        yield procs


class Lattice:
    def __init__(self, client: LatticeClient, controller: Controller, tmp: Path) -> None:
        self.client = client
        self.controller = controller
        self.specs = SpecStore(client.nc, client.subjects)
        self.tmp = tmp

    async def apply(self, text: str) -> None:
        path = self.tmp / f"spec-{time.monotonic_ns()}.yaml"
        path.write_text(text)
        spec = load_manifest_file(path)
        await self.specs.put(spec.name, spec.version, text, base_dir=str(self.tmp))
        await self.specs.deploy(spec.name, spec.version)

    async def placement(self, component_id: str) -> dict[str, int]:
        found = {}
        for host in await self.client.hosts():
            for component in host.components:
                if component.component_id == component_id:
                    found[host.host_id] = component.count
        return found


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0, what: str = "condition"
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout_s} s")


@pytest.fixture
async def lattice(
    nats_server: NatsServer, hosts: dict[str, HostProcess], tmp_path: Path
) -> AsyncIterator[Lattice]:
    nc = await connect(NatsOptions(nats_server.url))
    client = LatticeClient(nc)
    await wait_for_hosts(client, set(hosts))
    controller = Controller(nc, host_timeout_s=HOST_TIMEOUT_S, tick_s=0.2, lease_ttl_s=1.5)
    await controller.start()
    task = asyncio.create_task(controller.run(), name="controller")
    try:
        yield Lattice(client, controller, tmp_path)
    finally:
        controller.request_stop()
        await task
        await nc.close()


async def status_of(lattice: Lattice, app: str) -> str:
    record = await lattice.specs.get_status(app)
    return str(record.state) if record else "none"


async def http_ok(url: str) -> bool:
    with contextlib.suppress(aiohttp.ClientError):
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status == 200
    return False


async def test_apply_places_replicas_as_the_spread_says(
    lattice: Lattice, hosts: dict[str, HostProcess], components: dict[str, Path]
) -> None:
    await lattice.apply(manifest("shop", "v1", components["hello-wat"]))

    async def placed() -> bool:
        return await lattice.placement("shop--web") == {"eu-1": 1, "eu-2": 1, "us-1": 1}

    await wait_until(placed, what="2:1 spread over eu and us")
    await wait_until(lambda: _is(lattice, "shop", "deployed"), what="status deployed")
    for proc in hosts.values():
        assert await http_ok(f"{proc.http_url}/")


async def _is(lattice: Lattice, app: str, state: str) -> bool:
    return await status_of(lattice, app) == state


async def test_no_matching_host_reports_why(lattice: Lattice, components: dict[str, Path]) -> None:
    text = manifest("nowhere", "v1", components["hello-wat"]).replace("zone: us", "zone: mars")
    await lattice.apply(text)
    await wait_until(lambda: _is(lattice, "nowhere", "failed"), what="failed status")
    record = await lattice.specs.get_status("nowhere")
    assert record is not None
    assert any("no host matches zone=mars" in r for r in record.reasons)


async def test_sigkill_of_a_host_heals_on_survivors(
    lattice: Lattice, hosts: dict[str, HostProcess], components: dict[str, Path]
) -> None:
    await lattice.apply(manifest("shop", "v1", components["hello-wat"], instances=4))

    async def spread() -> bool:
        return sum((await lattice.placement("shop--web")).values()) == 4

    await wait_until(spread, what="4 replicas")
    victim = next(h for h, n in (await lattice.placement("shop--web")).items() if h != "us-1")
    survivor = next(h for h in ("eu-1", "eu-2") if h != victim)
    hosts[victim].kill()
    killed = time.monotonic()

    async def healed() -> bool:
        placed = await lattice.placement("shop--web")
        return (
            victim not in placed
            and placed.get(survivor) == 3
            and await http_ok(f"{hosts[survivor].http_url}/")
        )

    await wait_until(healed, timeout_s=15, what="replicas back on the survivor")
    # Generous bound for a shared CI machine; `make bench` reports the real figure.
    assert time.monotonic() - killed < 10


async def drain_during(
    load: Callable[[asyncio.Event], Awaitable[None]], host_id: str, nats_url: str
) -> subprocess.CompletedProcess[str]:
    """`lattice drain HOST_ID` while ``load`` runs; ``load`` ends when its event is set."""
    stop = asyncio.Event()
    task = asyncio.create_task(load(stop), name="load")
    try:
        return await asyncio.to_thread(
            subprocess.run,
            [LATTICE, "drain", host_id, "--nats-url", nats_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop.set()
        await task


async def test_drain_moves_replicas_without_failed_requests(
    lattice: Lattice,
    hosts: dict[str, HostProcess],
    components: dict[str, Path],
    nats_server: NatsServer,
) -> None:
    await lattice.apply(manifest("shop", "v1", components["hello-wat"]))
    await wait_until(lambda: _is(lattice, "shop", "deployed"), what="deployed")
    failures: list[str] = []
    url = f"{hosts['eu-2'].http_url}/"

    async def hammer(stop: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                try:
                    async with http.get(url) as response:
                        if response.status != 200:
                            failures.append(f"{url}: {response.status}")
                except aiohttp.ClientError as exc:
                    failures.append(f"{url}: {exc}")
                await asyncio.sleep(0.005)

    drained = await drain_during(hammer, "eu-1", nats_server.url)
    assert drained.returncode == 0, drained.stderr
    assert failures == []
    placed = await lattice.placement("shop--web")
    assert "eu-1" not in placed and placed["eu-2"] == 2
    process = hosts["eu-1"].process
    assert process is not None and process.wait(15) == 0


async def test_new_version_rolls_without_a_gap_and_rollback_works(
    lattice: Lattice, hosts: dict[str, HostProcess], components: dict[str, Path]
) -> None:
    await lattice.apply(manifest("shop", "v1", components["hello-wat"]))
    await wait_until(lambda: _is(lattice, "shop", "deployed"), what="v1 deployed")
    url = f"{hosts['us-1'].http_url}/"
    bodies: list[tuple[int, bytes]] = []
    stop = asyncio.Event()

    async def watch() -> None:
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                async with http.post(url, data=b"ping") as response:
                    bodies.append((response.status, await response.read()))
                await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch(), name="watch")
    await lattice.apply(manifest("shop", "v2", components["echo"]))

    async def rolled() -> bool:
        return bool(bodies) and bodies[-1] == (200, b"ping")

    await wait_until(rolled, what="v2 (echo) serving")
    stop.set()
    await watcher
    assert {status for status, _ in bodies} == {200}
    assert {body for _, body in bodies} <= {b"Hello from wasmlattice!\n", b"ping"}
    with pytest.raises(SpecError, match="exists already"):
        await lattice.specs.put("shop", "v2", manifest("shop", "v2", components["echo"]))
    await lattice.specs.deploy("shop", "v1")  # rollback

    async def back() -> bool:
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return await response.read() == b"Hello from wasmlattice!\n"

    await wait_until(back, what="rollback to v1")


async def test_undeploy_removes_replicas_and_routes(
    lattice: Lattice, components: dict[str, Path]
) -> None:
    await lattice.apply(manifest("shop", "v1", components["hello-wat"]))
    await wait_until(lambda: _is(lattice, "shop", "deployed"), what="deployed")
    await lattice.specs.undeploy("shop")

    async def gone() -> bool:
        return await lattice.placement("shop--web") == {} and not [
            link
            for link in await lattice.client.links()
            if link.annotations.get(annotation.APP) == "shop"
        ]

    await wait_until(gone, what="replicas and links removed")


def start_controller(nats_url: str, controller_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            LATTICE,
            "controller",
            "--nats-url",
            nats_url,
            "--controller-id",
            controller_id,
            "--host-timeout",
            str(HOST_TIMEOUT_S),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_controller_failover(
    nats_server: NatsServer,
    hosts: dict[str, HostProcess],
    components: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Two controller processes; SIGKILL the leader; the other takes over and acts."""
    controllers = [start_controller(nats_server.url, f"c{n}") for n in (1, 2)]
    nc = await connect(NatsOptions(nats_server.url))
    try:
        client = LatticeClient(nc)
        specs = SpecStore(nc, client.subjects)
        lattice = Lattice(client, None, tmp_path)  # type: ignore[arg-type]
        await lattice.apply(manifest("shop", "v1", components["hello-wat"]))
        await wait_until(lambda: _is(lattice, "shop", "deployed"), what="deployed")
        probe = Lease(nc, client.subjects, "probe")
        leader = await probe.holder_now()
        assert leader in ("c1", "c2")
        dead = controllers[0] if leader == "c1" else controllers[1]
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        killed = time.monotonic()

        async def new_leader() -> bool:
            holder = await probe.holder_now()
            return holder is not None and holder != leader

        await wait_until(new_leader, timeout_s=15, what="a new leader")
        assert time.monotonic() - killed < 10
        # The new leader acts: a new version is reconciled.
        await lattice.apply(manifest("shop", "v2", components["hello-wat"], instances=6))

        async def six() -> bool:
            return sum((await lattice.placement("shop--web")).values()) == 6

        await wait_until(six, what="v2 scaled by the new leader")
        assert (await specs.index("shop"))[0] is not None
    finally:
        await nc.close()
        for proc in controllers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()  # never leave one behind, even when it hangs
                    proc.wait()
                    raise


def counter_with_redis_provider(counter: Path, redis_url: str) -> str:
    """The counter on the us host; its keyvalue a Redis provider process on one eu host."""
    return f"""\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: tally
  annotations:
    version: v1
spec:
  components:
    - name: counter
      type: component
      properties:
        image: {counter}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
            spread:
              - name: us
                requirements:
                  zone: us
        - type: link
          properties:
            namespace: wasi
            package: keyvalue
            interfaces: [store, atomics]
            target:
              name: store
              config:
                - name: bucket
                  properties:
                    bucket: counts
    - name: store
      type: capability
      properties:
        provider: keyvalue-redis
        config:
          - name: redis
            properties:
              redis_url: {redis_url}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
            spread:
              - name: eu
                requirements:
                  zone: eu
""" + http_route_capability("counter", "/counter")


async def count(url: str) -> int | None:
    """The counter's next value, or None while it cannot count."""
    with contextlib.suppress(aiohttp.ClientError):
        async with aiohttp.ClientSession() as http, http.get(f"{url}/counter") as response:
            if response.status == 200:
                return int(json.loads(await response.text())["count"])
    return None


async def test_a_placed_provider_fails_over_and_the_count_goes_on(
    lattice: Lattice,
    hosts: dict[str, HostProcess],
    components: dict[str, Path],
    redis_server: RedisServer,
) -> None:
    await lattice.apply(counter_with_redis_provider(components["counter"], redis_server.url))
    counter_url = hosts["us-1"].http_url

    async def provider_hosts() -> dict[str, bool]:
        found = {}
        for host in await lattice.client.hosts():
            for provider in host.providers:
                if provider.provider_id == "tally--store":
                    found[host.host_id] = provider.healthy
        return found

    async def counting() -> bool:
        return await count(counter_url) is not None

    await wait_until(counting, what="the counter counting through the provider")
    await wait_until(lambda: _is(lattice, "tally", "deployed"), what="deployed")
    (victim,) = await provider_hosts()
    assert victim in ("eu-1", "eu-2")
    survivor = "eu-2" if victim == "eu-1" else "eu-1"
    before = await count(counter_url)
    assert before is not None

    hosts[victim].kill()
    killed = time.monotonic()

    async def moved() -> bool:
        return await provider_hosts() == {survivor: True}

    await wait_until(moved, timeout_s=20, what="the provider running on the surviving eu host")
    await wait_until(counting, timeout_s=20, what="the counter counting again")
    print(f"\nprovider failover: SIGKILL -> counting again {time.monotonic() - killed:.2f} s")
    # Redis kept the count: the new provider process serves the same data.
    after = await count(counter_url)
    assert after is not None and after > before + 1

    await lattice.specs.undeploy("tally")

    async def stopped() -> bool:
        return await provider_hosts() == {}

    await wait_until(stopped, what="the provider stopped after undeploy")


async def test_draining_the_providers_host_loses_no_count(
    lattice: Lattice,
    hosts: dict[str, HostProcess],
    components: dict[str, Path],
    redis_server: RedisServer,
    nats_server: NatsServer,
) -> None:
    """The replacement is healthy before the drained host's provider stops: no failed call."""
    await lattice.apply(counter_with_redis_provider(components["counter"], redis_server.url))
    await wait_until(lambda: _is(lattice, "tally", "deployed"), what="deployed")
    (victim,) = [h.host_id for h in await lattice.client.hosts() if h.providers]
    counts: list[int | None] = []

    async def hammer(stop: asyncio.Event) -> None:
        while not stop.is_set():
            counts.append(await count(hosts["us-1"].http_url))
            await asyncio.sleep(0.005)

    drained = await drain_during(hammer, victim, nats_server.url)
    assert drained.returncode == 0, drained.stderr
    assert None not in counts and len(counts) > 10
    assert counts == list(range(counts[0], counts[0] + len(counts)))  # every call counted once
    (now,) = [h for h in await lattice.client.hosts() if h.providers]
    assert now.host_id != victim and now.providers[0].healthy


async def test_controller_stops_even_when_a_loop_misses_its_cancellation(
    nats_server: NatsServer,
) -> None:
    """Python 3.11's wait_for can swallow a cancellation; run() must end regardless."""
    nc = await connect(NatsOptions(nats_server.url))
    controller = Controller(nc, tick_s=0.05)
    real_pass = controller.reconcile_once
    swallowed: list[bool] = []

    async def pass_that_swallows_cancellation() -> Plan | None:
        try:
            await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            swallowed.append(True)  # as wait_for does when its await completes meanwhile
        return await real_pass()

    controller.reconcile_once = pass_that_swallows_cancellation  # type: ignore[method-assign]
    await controller.start()
    task = asyncio.create_task(controller.run(), name="controller")
    try:
        await asyncio.sleep(0.4)  # inside the first pass's sleep
        controller.request_stop()
        await asyncio.wait_for(task, 10)
        assert swallowed == [True]
    finally:
        await nc.close()
