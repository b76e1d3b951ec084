"""The controller section's lattice: three hosts by zone, a controller, and how the bench watches.

nats-server and three ``lattice host`` processes labelled zone=eu, eu, us (``ZONES``), as in
``bench.lattice_rig``, and a ``Controller`` in the bench process, as ``lattice up`` runs one
beside a host. Hosts are stopped by SIGKILL (as when a machine dies), by pid, in ``finally``.

The bench watches NATS for what it times: scale requests to hosts (a plain subscription
to the control subjects receives a copy of each) and ``component_scaled`` events; and it
asks each host's own inventory, not the controller's view, how many replicas it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bench.lattice_rig import connected, nats_server, start_host, wait_joined
from bench.procs import BenchProcessError, Server
from lattice.process import kill_process

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from controller.service import Controller
    from lattice.client import LatticeClient
    from lattice.specs import SpecStore

ZONES = {"eu-1": "eu", "eu-2": "eu", "us-1": "us"}
POLL_S = 0.005


@dataclass(frozen=True)
class Timing:
    """The knobs failover time depends on: host heartbeat, controller timeout and tick."""

    label: str
    heartbeat_s: float
    host_timeout_s: float
    tick_s: float
    lease_ttl_s: float

    @property
    def text(self) -> str:
        return (f"{self.label}: heartbeat {self.heartbeat_s:g} s, host timeout "
                f"{self.host_timeout_s:g} s, tick {self.tick_s:g} s")  # fmt: skip


@dataclass(frozen=True)
class Seen:
    """A scale request or a ``component_scaled`` event, as the bench saw it on NATS."""

    at: float  # time.perf_counter()
    host_id: str
    component_id: str
    count: int


@dataclass
class Host:
    host_id: str
    zone: str
    server: Server

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.port}{path}"


@dataclass
class Bench:
    """One running lattice and everything the measurements use to talk to it."""

    timing: Timing
    tmp: Path
    nats_url: str
    wasm: Path
    nc: Client
    client: LatticeClient
    specs: SpecStore
    controller: Controller
    http: aiohttp.ClientSession
    hosts: dict[str, Host] = field(default_factory=dict)  # the live ones
    started: list[Host] = field(default_factory=list)  # every one, to stop them all
    requests: list[Seen] = field(default_factory=list)
    scaled: list[Seen] = field(default_factory=list)


# -- the lattice ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_lattice(timing: Timing, wasm: Path, tmp: Path) -> AsyncIterator[Bench]:
    """The lattice with every host of ``ZONES`` joined and the controller holding the lease."""
    from controller.service import Controller
    from lattice.client import LatticeClient
    from lattice.specs import SpecStore

    with nats_server(tmp, f"controller-{timing.label}") as nats:
        async with connected(nats.url, "bench-controller") as nc, aiohttp.ClientSession() as http:
            client = LatticeClient(nc)
            controller = Controller(nc, host_timeout_s=timing.host_timeout_s, tick_s=timing.tick_s,
                                    lease_ttl_s=timing.lease_ttl_s)  # fmt: skip
            bench = Bench(timing, tmp, nats.url, wasm, nc, client, SpecStore(nc, client.subjects),
                          controller, http)  # fmt: skip
            try:
                await _watch_wire(bench)
                # The controller first: a host has joined once the controller heard of it.
                async with _running(controller):
                    for host_id, zone in ZONES.items():
                        add_host(bench, host_id, zone)
                    for host in list(bench.hosts.values()):
                        await wait_host_joined(bench, host)
                    yield bench
            finally:
                for host in bench.started:
                    _kill_quietly(host)


@contextlib.asynccontextmanager
async def _running(controller: Controller) -> AsyncIterator[None]:
    await controller.start()
    task = asyncio.create_task(controller.run(), name="bench-controller")
    try:
        await until(lambda: controller.is_leader, 15.0, "the controller to hold the lease")
        yield
    finally:
        controller.request_stop()
        await task


def add_host(bench: Bench, host_id: str, zone: str) -> Host:
    """Start a host labelled ``zone=<zone>``, heartbeating as ``bench.timing`` says."""
    server = start_host(bench.nats_url, bench.tmp / host_id, host_id,
                        f"controller-{bench.timing.label}-{host_id}", "--label", f"zone={zone}",
                        "--heartbeat", str(bench.timing.heartbeat_s))  # fmt: skip
    host = Host(host_id, zone, server)
    bench.hosts[host_id] = host
    bench.started.append(host)
    return host


def kill(host: Host) -> None:
    """SIGKILL by pid: no host_stopped event, no drain, as when a machine dies."""
    kill_process(host.server.process)


def _kill_quietly(host: Host) -> None:
    # The end of the bench: nothing is measured any more, so no graceful drain is needed.
    kill(host)


async def wait_host_joined(bench: Bench, host: Host) -> None:
    """Joined once it answers an inventory request and the controller has heard of it."""
    from lattice.errors import LatticeError

    async def joined() -> bool:
        with contextlib.suppress(LatticeError):
            await bench.client.inventory(host.host_id)
            return host.host_id in bench.controller.hosts
        return False

    await wait_joined([host.server], joined, poll_s=0.05)


async def _watch_wire(bench: Bench) -> None:
    """Record scale requests to any host and ``component_scaled`` events, with the time."""
    from lattice.errors import BadMessage
    from lattice.events import ComponentScaled, decode_event
    from lattice.messages import ScaleComponent, decode

    subjects = bench.client.subjects

    async def on_request(msg: Msg) -> None:
        with contextlib.suppress(BadMessage):
            request = decode(ScaleComponent, msg.data)
            host_id = msg.subject.split(".")[4]  # P.L.ctl.host.<host-id>.component.scale
            seen = Seen(time.perf_counter(), host_id, request.component_id, request.count)
            bench.requests.append(seen)

    async def on_scaled(msg: Msg) -> None:
        with contextlib.suppress(BadMessage):
            event = decode_event(msg.data)
            if isinstance(event, ComponentScaled):
                done = event.data
                seen = Seen(time.perf_counter(), done.host_id, done.component_id, done.count)
                bench.scaled.append(seen)

    # A plain subscription beside the host's: NATS hands each of them a copy.
    await bench.nc.subscribe(f"{subjects.root}.ctl.host.*.component.scale", cb=on_request)
    await bench.nc.subscribe(subjects.events(ComponentScaled.event_type()), cb=on_scaled)
    await bench.nc.flush()


# -- observing the lattice -------------------------------------------------------------------


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise BenchProcessError(f"timed out after {timeout_s} s waiting for {what}")


async def replica_counts(
    bench: Bench, host_ids: Sequence[str], component_id: str
) -> dict[str, int]:
    """Replicas per host, from each host's own inventory (the truth, not the controller's view)."""
    inventories = await asyncio.gather(*(bench.client.inventory(h) for h in host_ids))
    return {
        inventory.host_id: sum(
            c.count for c in inventory.components if c.component_id == component_id
        )
        for inventory in inventories
    }


async def answers(bench: Bench, host_ids: Sequence[str], path: str) -> bool:
    """Every one of the hosts answers ``GET path`` with 200."""

    async def ok(host_id: str) -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with bench.http.get(bench.hosts[host_id].url(path)) as response:
                await response.read()
                return response.status == 200
        return False

    return all(await asyncio.gather(*(ok(h) for h in host_ids)))


async def serving(
    bench: Bench, host_ids: Sequence[str], component_id: str, target: int, path: str,
    timeout_s: float = 60.0,
) -> tuple[float, float]:  # fmt: skip
    """Poll until the hosts run ``target`` replicas in all and each running one answers.

    Returns (first time the counts summed to the target, time every host answered).
    """
    deadline = time.monotonic() + timeout_s
    placed_at: float | None = None
    while time.monotonic() < deadline:
        counts = await replica_counts(bench, host_ids, component_id)
        now = time.perf_counter()
        if sum(counts.values()) != target:
            placed_at = None
        else:
            placed_at = placed_at or now
            if await answers(bench, [h for h, n in counts.items() if n], path):
                return placed_at, time.perf_counter()
        await asyncio.sleep(POLL_S)
    raise BenchProcessError(f"{component_id}: {target} replicas not serving in {timeout_s} s")


async def _settled(bench: Bench, component_id: str, target: int, path: str) -> bool:
    """The controller has nothing to do, and the hosts run and serve ``target`` replicas."""
    controller = bench.controller
    plan = controller.last_plan
    if controller.executor.pending or plan is None or plan.commands:
        return False
    if not set(bench.hosts) <= set(controller.hosts):
        return False
    counts = await replica_counts(bench, list(bench.hosts), component_id)
    if sum(counts.values()) != target:
        return False
    return await answers(bench, [h for h, n in counts.items() if n], path)


async def wait_settled(
    bench: Bench, component_id: str, target: int, path: str, timeout_s: float = 60.0
) -> None:
    # Checked twice a few passes apart: one quiet pass may just precede the next command.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await _settled(bench, component_id, target, path):
            await asyncio.sleep(3 * bench.timing.tick_s)
            if await _settled(bench, component_id, target, path):
                return
        await asyncio.sleep(0.05)
    raise BenchProcessError(f"{component_id} did not settle at {target} replicas")


async def on_the_wire(
    bench: Bench, since: float, component_id: str, timeout_s: float = 5.0
) -> tuple[float, float]:
    """When the first scale request since ``since`` was seen, and the last confirmation.

    A host answers a scale once its replicas run and publishes ``component_scaled`` just
    after, so the bench may see the replicas serving before the event arrives (on a busy
    machine, by tens of ms): wait until every request seen has its confirmation.
    """

    def confirmed() -> bool:
        sent = [s for s in bench.requests if s.at >= since and s.component_id == component_id]
        done = [s for s in bench.scaled if s.at >= since and s.component_id == component_id]
        return bool(sent) and len(done) >= len(sent)

    await until(confirmed, timeout_s, f"scale requests of {component_id} and their events")
    sent, done = (
        first_at(bench.requests, since, component_id),
        last_at(bench.scaled, since, component_id),
    )
    assert sent is not None and done is not None  # confirmed() saw both
    return sent, done


def first_at(seen: Sequence[Seen], since: float, component_id: str) -> float | None:
    return next((s.at for s in seen if s.at >= since and s.component_id == component_id), None)


def last_at(seen: Sequence[Seen], since: float, component_id: str) -> float | None:
    times = [s.at for s in seen if s.at >= since and s.component_id == component_id]
    return max(times) if times else None


async def wait_gone(bench: Bench, cid: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = await replica_counts(bench, list(bench.hosts), cid)
        if not any(counts.values()) and not bench.controller.executor.pending:
            return
        await asyncio.sleep(0.05)
    raise BenchProcessError(f"{cid} still runs {timeout_s} s after undeploy")
