"""Controller: failover after a host's SIGKILL, apply to serving at 50 replicas, plan cost.

A real lattice, all local: nats-server (JetStream) in a temp dir, three ``lattice host``
processes labelled zone=eu, eu, us (each its own process, stopped by pid in ``finally``)
and a ``Controller`` in the bench process, as ``lattice up`` runs one beside a host.

1. failover: an app of 4 hello-wat replicas (spreadscaler: eu weight 2, us weight 1, so
   2 + 1 on the eu hosts and 1 on the us host), routed at ``/``. Each round SIGKILLs the
   eu host running the most replicas and times, from the kill, until the survivors'
   inventories sum to 4 again and every survivor running it answers ``GET /`` with 200.
   A fresh replacement host (new host id, zone=eu) joins between rounds, so every round
   kills a host with replicas. Once with a fast heartbeat, once with the defaults.
2. apply to serving: ``SpecStore.deploy`` of an app of 50 replicas (no spread: 17/17/16)
   until the inventories sum to 50 and every host answers ``GET /fifty``; undeployed (and
   gone from every host) between rounds, a new version each round.
3. ``reconcile()`` alone: 1,000 apps over 100 hosts, in this process, no I/O.

The bench watches NATS for what it times: scale requests to hosts (a plain subscription
to the control subjects receives a copy of each) and ``component_scaled`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bench.context import CACHE_DIR, LOG_DIR, Config, prepare_components
from bench.procs import BenchProcessError, Server
from bench.stats import median
from bench.table import Table, fmt

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from controller.model import Observed
    from controller.reconcile import Plan
    from controller.service import Controller
    from deploy.model import AppSpec
    from lattice.client import LatticeClient
    from lattice.specs import SpecStore

TITLE = "failover after SIGKILL, apply to serving (50 replicas), reconcile() cost"

FAILOVER_APP = "failover"
FAILOVER_REPLICAS = 4
APPLY_APP = "fifty"
APPLY_REPLICAS = 50
APPLY_PATH = "/fifty"
FAILOVER_ROUNDS = 5
APPLY_ROUNDS = 3
PLAN_RUNS = 7
PLAN_APPS = 1000
PLAN_HOSTS = 100
POLL_S = 0.005
FAILOVER_GOAL_MS = 3000.0
PLAN_GOAL_MS = 100.0
ZONES = {"eu-1": "eu", "eu-2": "eu", "us-1": "us"}

# Samples per key, one value per round (ms, unless the key says otherwise).
Samples = dict[str, list[float]]


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


# What the integration tests use, and what `lattice host` / `Controller` default to.
FAST = Timing("fast", heartbeat_s=0.3, host_timeout_s=1.0, tick_s=0.2, lease_ttl_s=1.5)
DEFAULTS = Timing("defaults", heartbeat_s=1.0, host_timeout_s=2.5, tick_s=0.5, lease_ttl_s=3.0)


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


def run(config: Config) -> list[Table]:
    wasm = prepare_components(["hello-wat"])["hello-wat"]
    # The pure part first: it needs no processes, and a quiet machine suits a CPU timing.
    plan = _measure_plans(PLAN_RUNS)
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as tmp:
        results = asyncio.run(_run_lattices(config, wasm, Path(tmp)))
    fast, applied, defaults = results
    return [
        _failover_table([(FAST, fast), (DEFAULTS, defaults)]),
        _rounds_table([(FAST, fast), (DEFAULTS, defaults)]),
        _apply_table(applied),
        _plan_table(plan),
    ]


async def _run_lattices(config: Config, wasm: Path, tmp: Path) -> tuple[Samples, Samples, Samples]:
    # A fresh lattice per timing, so the defaults run inherits no dead hosts or state.
    async with _lattice(FAST, wasm, tmp / "fast") as bench:
        fast = await _measure_failover(bench, config.rounds_or(FAILOVER_ROUNDS))
        applied = await _measure_apply(bench, config.rounds_or(APPLY_ROUNDS))
    async with _lattice(DEFAULTS, wasm, tmp / "defaults") as bench:
        defaults = await _measure_failover(bench, config.rounds_or(FAILOVER_ROUNDS))
    return fast, applied, defaults


# -- the lattice ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _lattice(timing: Timing, wasm: Path, tmp: Path) -> AsyncIterator[Bench]:
    from lattice.natsd import NatsServer

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_file = LOG_DIR / f"controller-{timing.label}-nats.log"
    nats_server = NatsServer(tmp / "nats", log_file=log_file).start()
    try:
        async with _connected(timing, wasm, tmp, nats_server.url) as bench:
            yield bench
    finally:
        nats_server.stop()


@contextlib.asynccontextmanager
async def _connected(timing: Timing, wasm: Path, tmp: Path, nats_url: str) -> AsyncIterator[Bench]:
    from controller.service import Controller
    from lattice.client import LatticeClient
    from lattice.connection import NatsOptions, connect
    from lattice.specs import SpecStore

    # No reconnect: closing at the end is then not reported as a lost connection.
    nc = await connect(NatsOptions(nats_url, name="bench-controller"), reconnect=False)
    client = LatticeClient(nc)
    controller = Controller(nc, host_timeout_s=timing.host_timeout_s, tick_s=timing.tick_s,
                            lease_ttl_s=timing.lease_ttl_s)  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            bench = Bench(timing, tmp, nats_url, wasm, nc, client, SpecStore(nc, client.subjects),
                          controller, http)  # fmt: skip
            try:
                await _watch_wire(bench)
                # The controller first: a host has joined once the controller heard of it.
                async with _running(controller):
                    for host_id, zone in ZONES.items():
                        _start_host(bench, host_id, zone)
                    for host in list(bench.hosts.values()):
                        await _wait_joined(bench, host)
                    yield bench
            finally:
                for host in bench.started:
                    _kill_quietly(host)
    finally:
        await nc.close()


@contextlib.asynccontextmanager
async def _running(controller: Controller) -> AsyncIterator[None]:
    await controller.start()
    task = asyncio.create_task(controller.run(), name="bench-controller")
    try:
        await _until(lambda: controller.is_leader, 15.0, "the controller to hold the lease")
        yield
    finally:
        controller.request_stop()
        await task


def _start_host(bench: Bench, host_id: str, zone: str) -> Host:
    from lattice.natsd import free_port

    # Every host shares the bench's compile cache, already filled by prepare_components,
    # so a start deserialises instead of compiling: the warm case the aims are about.
    state_dir = bench.tmp / host_id
    state_dir.mkdir(parents=True)
    (state_dir / "compile-cache").symlink_to(CACHE_DIR, target_is_directory=True)
    port = free_port()
    log_path = LOG_DIR / f"controller-{bench.timing.label}-{host_id}.log"
    args = ["host", "--nats-url", bench.nats_url, "--http-port", str(port),
            "--state-dir", str(state_dir), "--host-id", host_id, "--label", f"zone={zone}",
            "--heartbeat", str(bench.timing.heartbeat_s)]  # fmt: skip
    lattice_cli = str(Path(sys.executable).parent / "lattice")
    with open(log_path, "w") as log:
        # Own session: a Ctrl-C reaches only the bench, which then stops the host by pid.
        process = subprocess.Popen(
            [lattice_cli, *args], stdout=log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
    host = Host(host_id, zone, Server(host_id, process, log_path, port))
    bench.hosts[host_id] = host
    bench.started.append(host)
    return host


def _kill(host: Host) -> None:
    """SIGKILL by pid: no host_stopped event, no drain, as when a machine dies."""
    os.kill(host.server.pid, signal.SIGKILL)
    host.server.process.wait()


def _kill_quietly(host: Host) -> None:
    # The end of the bench: nothing is measured any more, so no graceful drain is needed.
    if host.server.process.poll() is None:
        _kill(host)


async def _wait_joined(bench: Bench, host: Host, timeout_s: float = 60.0) -> None:
    """Joined once it answers an inventory request and the controller has heard of it."""
    from lattice.errors import LatticeError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if host.server.process.poll() is not None:
            raise BenchProcessError(f"host {host.host_id} exited:\n{_tail(host.server.log_path)}")
        with contextlib.suppress(LatticeError):
            await bench.client.inventory(host.host_id)
            if host.host_id in bench.controller.hosts:
                return
        await asyncio.sleep(0.05)
    raise BenchProcessError(f"host {host.host_id} did not join:\n{_tail(host.server.log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def _watch_wire(bench: Bench) -> None:
    """Record scale requests to any host and ``component_scaled`` events, with the time."""
    from lattice.errors import BadMessage
    from lattice.messages import Event, ScaleComponent, decode

    subjects = bench.client.subjects

    async def on_request(msg: Msg) -> None:
        with contextlib.suppress(BadMessage):
            request = decode(ScaleComponent, msg.data)
            host_id = msg.subject.split(".")[4]  # P.L.ctl.host.<host-id>.component.scale
            seen = Seen(time.perf_counter(), host_id, request.component_id, request.count)
            bench.requests.append(seen)

    async def on_scaled(msg: Msg) -> None:
        with contextlib.suppress(BadMessage):
            data = decode(Event, msg.data).data
            seen = Seen(time.perf_counter(), str(data["host_id"]), str(data["component_id"]),
                        int(data["count"]))  # fmt: skip
            bench.scaled.append(seen)

    # A plain subscription beside the host's: NATS hands each of them a copy.
    await bench.nc.subscribe(f"{subjects.root}.ctl.host.*.component.scale", cb=on_request)
    await bench.nc.subscribe(subjects.events("component_scaled"), cb=on_scaled)
    await bench.nc.flush()


# -- observing the lattice -------------------------------------------------------------------


async def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise BenchProcessError(f"timed out after {timeout_s} s waiting for {what}")


async def _counts(bench: Bench, host_ids: Sequence[str], component_id: str) -> dict[str, int]:
    """Replicas per host, from each host's own inventory (the truth, not the controller's view)."""
    inventories = await asyncio.gather(*(bench.client.inventory(h) for h in host_ids))
    return {
        inventory.host_id: sum(
            c.count for c in inventory.components if c.component_id == component_id
        )
        for inventory in inventories
    }


async def _answers(bench: Bench, host_ids: Sequence[str], path: str) -> bool:
    """Every one of the hosts answers ``GET path`` with 200."""

    async def ok(host_id: str) -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with bench.http.get(bench.hosts[host_id].url(path)) as response:
                await response.read()
                return response.status == 200
        return False

    return all(await asyncio.gather(*(ok(h) for h in host_ids)))


async def _serving(
    bench: Bench, host_ids: Sequence[str], component_id: str, target: int, path: str,
    timeout_s: float = 60.0,
) -> tuple[float, float]:  # fmt: skip
    """Poll until the hosts run ``target`` replicas in all and each running one answers.

    Returns (first time the counts summed to the target, time every host answered).
    """
    deadline = time.monotonic() + timeout_s
    placed_at: float | None = None
    while time.monotonic() < deadline:
        counts = await _counts(bench, host_ids, component_id)
        now = time.perf_counter()
        if sum(counts.values()) != target:
            placed_at = None
        else:
            placed_at = placed_at or now
            if await _answers(bench, [h for h, n in counts.items() if n], path):
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
    counts = await _counts(bench, list(bench.hosts), component_id)
    if sum(counts.values()) != target:
        return False
    return await _answers(bench, [h for h, n in counts.items() if n], path)


async def _wait_settled(
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


def _first(seen: Sequence[Seen], since: float, component_id: str) -> float | None:
    return next((s.at for s in seen if s.at >= since and s.component_id == component_id), None)


def _last(seen: Sequence[Seen], since: float, component_id: str) -> float | None:
    times = [s.at for s in seen if s.at >= since and s.component_id == component_id]
    return max(times) if times else None


# -- specs ------------------------------------------------------------------------------------


def _manifest(app: str, version: str, wasm: Path, instances: int, path: str, spread: bool) -> str:
    """A wadm manifest: hello-wat under a spreadscaler, routed by the http-server at ``path``."""
    spreads = """
            spread:
              - name: eu
                requirements:
                  zone: eu
                weight: 2
              - name: us
                requirements:
                  zone: us
                weight: 1""" if spread else ""  # fmt: skip
    return f"""\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {app}
  annotations:
    version: {version}
spec:
  components:
    - name: web
      type: component
      properties:
        image: {wasm}
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}{spreads}
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
              name: web
            source:
              config:
                - name: route
                  properties:
                    path: {path}
"""


async def _put(bench: Bench, app: str, version: str, text: str) -> None:
    from deploy.manifest import load_manifest

    # Parsed first, as `lattice apply` does: a bad manifest fails here, not in a timeout.
    load_manifest(text, f"{app}@{version}", base_dir=bench.tmp)
    await bench.specs.put(app, version, text, base_dir=str(bench.tmp))


# -- 1. failover --------------------------------------------------------------------------------


async def _measure_failover(bench: Bench, rounds: int) -> Samples:
    from controller.reconcile import component_id

    cid = component_id(FAILOVER_APP, "web")
    text = _manifest(FAILOVER_APP, "v1", bench.wasm, FAILOVER_REPLICAS, "/", spread=True)
    await _put(bench, FAILOVER_APP, "v1", text)
    await bench.specs.deploy(FAILOVER_APP, "v1")
    await _wait_settled(bench, cid, FAILOVER_REPLICAS, "/")
    samples: Samples = {}
    for number in range(rounds):
        # Detection depends on how long before the kill the victim last heartbeated.
        # Left alone, the settle loop would lock every kill to about the same phase; set
        # phases spread the rounds evenly over the heartbeat interval instead.
        phase_s = (number + 0.5) / rounds * bench.timing.heartbeat_s
        for key, value in (await _failover_round(bench, cid, phase_s)).items():
            samples.setdefault(key, []).append(value)
        # A new host id each time: the controller must treat it as a new host.
        replacement = _start_host(bench, f"eu-r{number + 1}", "eu")
        await _wait_joined(bench, replacement)
        await _wait_settled(bench, cid, FAILOVER_REPLICAS, "/")
    await bench.specs.undeploy(FAILOVER_APP)
    await _wait_gone(bench, cid)
    return samples


async def _failover_round(bench: Bench, cid: str, phase_s: float) -> dict[str, float]:
    counts = await _counts(bench, list(bench.hosts), cid)
    eu = [h for h in counts if bench.hosts[h].zone == "eu"]
    victim = max(eu, key=lambda h: (counts[h], h))
    survivors = [h for h in bench.hosts if h != victim]
    await _after_heartbeat(bench, victim, phase_s)
    # How old the controller's latest news of the victim is: detection can only start
    # host_timeout_s after that heartbeat, so this explains most of a round's spread.
    heard_ms = (time.time() - bench.controller.hosts[victim].last_seen) * 1000
    killed = time.perf_counter()
    _kill(bench.hosts.pop(victim))
    placed, served = await _serving(bench, survivors, cid, FAILOVER_REPLICAS, "/")
    sent = _first(bench.requests, killed, cid)
    done = _last(bench.scaled, killed, cid)
    if sent is None or done is None:
        raise BenchProcessError("replicas came back without a scale request on the wire")
    return {
        "lost": float(counts[victim]),
        "heard": heard_ms,
        "sent": (sent - killed) * 1000,
        "done": (done - killed) * 1000,
        "placed": (placed - killed) * 1000,
        "served": (served - killed) * 1000,
    }


async def _after_heartbeat(bench: Bench, host_id: str, phase_s: float) -> None:
    """Return ``phase_s`` after the controller receives the host's next heartbeat."""
    views = bench.controller.hosts
    before = views[host_id].last_seen
    await _until(lambda: views[host_id].last_seen > before, 10.0, f"a heartbeat of {host_id}")
    await asyncio.sleep(max(0.0, views[host_id].last_seen + phase_s - time.time()))


async def _wait_gone(bench: Bench, cid: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = await _counts(bench, list(bench.hosts), cid)
        if not any(counts.values()) and not bench.controller.executor.pending:
            return
        await asyncio.sleep(0.05)
    raise BenchProcessError(f"{cid} still runs {timeout_s} s after undeploy")


# -- 2. apply to serving ---------------------------------------------------------------------


async def _measure_apply(bench: Bench, rounds: int) -> Samples:
    from controller.reconcile import component_id

    cid = component_id(APPLY_APP, "web")
    samples: Samples = {}
    for number in range(rounds):
        version = f"v{number + 1}"
        text = _manifest(APPLY_APP, version, bench.wasm, APPLY_REPLICAS, APPLY_PATH, spread=False)
        await _put(bench, APPLY_APP, version, text)  # untimed: the deploy is the trigger
        for key, value in (await _apply_round(bench, cid, version)).items():
            samples.setdefault(key, []).append(value)
        await bench.specs.undeploy(APPLY_APP)
        await _wait_gone(bench, cid)
    return samples


async def _apply_round(bench: Bench, cid: str, version: str) -> dict[str, float]:
    started = time.perf_counter()
    await bench.specs.deploy(APPLY_APP, version)
    deployed = time.perf_counter()
    placed, served = await _serving(bench, list(bench.hosts), cid, APPLY_REPLICAS, APPLY_PATH)
    sent = _first(bench.requests, started, cid)
    done = _last(bench.scaled, started, cid)
    if sent is None or done is None:
        raise BenchProcessError("50 replicas placed without scale requests on the wire")
    return {
        "deployed": (deployed - started) * 1000,
        "sent": (sent - started) * 1000,
        "done": (done - started) * 1000,
        "placed": (placed - started) * 1000,
        "served": (served - started) * 1000,
    }


# -- 3. reconcile() alone ----------------------------------------------------------------------


def _plan_inputs() -> tuple[list[AppSpec], Observed]:
    """1,000 apps (3 replicas each, eu 2 : us 1, an HTTP route) and 100 idle hosts."""
    from controller.model import HostView, Observed

    apps = [_plan_app(f"app-{n:04d}") for n in range(PLAN_APPS)]
    hosts = {
        f"host-{n:03d}": HostView(f"host-{n:03d}", {"zone": "eu" if n % 2 else "us"}, 0.0)
        for n in range(PLAN_HOSTS)
    }
    return apps, Observed(hosts=hosts)


def _plan_app(name: str) -> AppSpec:
    """What the failover manifest normalises to, as ``deploy.manifest`` would build it."""
    from deploy.model import AppSpec, CapabilityDecl, ComponentDecl, LinkDecl, Scaler, Spread

    spreads = (Spread("eu", (("zone", "eu"),), 2), Spread("us", (("zone", "us"),), 1))
    web = ComponentDecl("web", "/apps/web.wasm", scaler=Scaler("spread", 3, spreads))
    route = LinkDecl("httpserver", "web", "wasi", "http", ("incoming-handler",),
                     source_config=(("path", f"/{name}"),))  # fmt: skip
    return AppSpec(name, "v1", (web,), (CapabilityDecl("httpserver", "http-server"),), (route,))


def _after(observed: Observed, plan: Plan) -> Observed:
    """The lattice once every command of ``plan`` is done and heartbeated."""
    from controller.commands import PutLinkCommand, ScaleCommand
    from controller.model import LinkView, Observed, Replicas

    components: dict[str, dict[str, Replicas]] = {h: {} for h in observed.hosts}
    links = dict(observed.links)
    for command in plan.commands:
        if isinstance(command, ScaleCommand):
            replicas = Replicas(command.count, command.revision, command.app)
            components[command.host_id][command.component_id] = replicas
        elif isinstance(command, PutLinkCommand):
            view = LinkView(command.link_key, command.target, command.interfaces,
                            command.config, command.app)  # fmt: skip
            links[command.link_key] = view
    hosts = {h: dataclasses.replace(v, components=components[h]) for h, v in observed.hosts.items()}
    return Observed(hosts=hosts, links=links)


def _without_heartbeat(observed: Observed, host_id: str) -> Observed:
    """``host_id`` last heard from long ago: the controller must re-place its replicas."""
    from controller.model import Observed

    hosts = dict(observed.hosts)
    hosts[host_id] = dataclasses.replace(hosts[host_id], last_seen=-60.0)
    return Observed(hosts=hosts, links=observed.links)


def _measure_plans(runs: int) -> dict[str, tuple[int, list[float]]]:
    """Per case: commands emitted and ms per ``reconcile()`` call."""
    apps, idle = _plan_inputs()
    cold = _time_plan(apps, idle, runs)
    steady_observed = _after(idle, cold[0])
    steady = _time_plan(apps, steady_observed, runs)
    busiest = max(steady_observed.hosts.values(), key=lambda h: (len(h.components), h.host_id))
    lost = _time_plan(apps, _without_heartbeat(steady_observed, busiest.host_id), runs)
    replicas = sum(r.count for r in busiest.components.values())
    return {
        "cold start: nothing running (every link and replica to create)":
            (len(cold[0].commands), cold[1]),
        "steady state: observed = desired (nothing to do)": (len(steady[0].commands), steady[1]),
        f"one host timed out ({replicas} replicas to re-place)": (len(lost[0].commands), lost[1]),
    }  # fmt: skip


def _time_plan(apps: list[AppSpec], observed: Observed, runs: int) -> tuple[Plan, list[float]]:
    from controller.reconcile import reconcile

    times = []
    plan = None
    for _ in range(runs):
        started = time.perf_counter()
        # now=0.0 and hosts last seen at 0.0: alive, with no clock read in the loop.
        plan = reconcile(apps, observed, {}, 0.0, 2.5)
        times.append((time.perf_counter() - started) * 1000)
    assert plan is not None
    return plan, times


# -- tables --------------------------------------------------------------------------------------


def _range(values: Sequence[float], digits: int = 0) -> str:
    """Median with the min-max range of the rounds: few rounds make a p90 meaningless."""
    return f"{fmt(median(values), digits)} ({fmt(min(values), digits)}-{fmt(max(values), digits)})"


FAILOVER_STEPS = [
    ("sent", "the controller sends the replacement scale request (detection)"),
    ("done", "the survivor has started them (its component_scaled event)"),
    ("placed", "the survivors' inventories sum to 4 again"),
    ("served", "... and every survivor running it answers GET / with 200"),
]


def _failover_table(runs: list[tuple[Timing, Samples]]) -> Table:
    rounds = len(runs[0][1]["served"])
    table = Table(
        f"Failover: ms from SIGKILL of a host running replicas, median (min-max) of {rounds} "
        "rounds",
        ["after the SIGKILL", *(timing.text for timing, _ in runs)],
    )
    for key, label in FAILOVER_STEPS:
        table.add(label, *(_range(samples[key]) for _, samples in runs))
    table.add("restart alone: request sent -> survivor serving",
              *(_range(_minus(s["served"], s["sent"]), 1) for _, s in runs))  # fmt: skip
    table.add(f"aim <= {FAILOVER_GOAL_MS:.0f} ms (median)",
              *(_verdict(median(s["served"]), FAILOVER_GOAL_MS) for _, s in runs))  # fmt: skip
    table.notes += [
        "4 replicas of hello-wat (eu 2 : us 1 -> 2 + 1 on the eu hosts, 1 on us); each round "
        "kills the eu host with the most replicas; a new eu host (new id) joins between rounds "
        "and the controller moves one replica onto it before the next kill.",
        "Round n of N kills (n - 0.5) / N of a heartbeat interval after the victim's last "
        "heartbeat reached the controller, so the rounds sample the interval evenly.",
        "Timestamps: scale requests and component_scaled events as the bench receives them "
        "from NATS; placement from each survivor's own inventory (request/reply every 5 ms).",
    ]
    return table


def _minus(later: list[float], earlier: list[float]) -> list[float]:
    return [b - a for a, b in zip(earlier, later, strict=True)]


def _verdict(value: float | None, goal: float) -> str:
    if value is None:
        return "-"
    return "met" if value <= goal else f"missed by {value - goal:,.0f} ms"


def _rounds_table(runs: list[tuple[Timing, Samples]]) -> Table:
    table = Table(
        "Failover rounds: detection vs the age of the victim's last heartbeat, ms",
        ["round", "replicas lost", "heard: last heartbeat before the kill",
         "floor: host timeout - heard", "detection", "detection - floor", "kill -> serving"],
    )  # fmt: skip
    for timing, samples in runs:
        for n, heard in enumerate(samples["heard"]):
            floor = timing.host_timeout_s * 1000 - heard
            sent, served = samples["sent"][n], samples["served"][n]
            cells = [heard, floor, sent, sent - floor, served]
            table.add(f"{timing.label} #{n + 1}", f"{samples['lost'][n]:.0f}",
                      *(fmt(cell, 0) for cell in cells))  # fmt: skip
    table.notes.append(
        "The controller counts a host dead once it has not heard from it for host timeout, "
        "and acts on its next pass after that (every tick, or sooner on any event such as "
        "another host's heartbeat, then a 20 ms debounce): detection = floor + that wait."
    )
    return table


APPLY_STEPS = [
    ("deployed", "SpecStore.deploy() returns (index CAS + spec_changed event)"),
    ("sent", "the controller sends the first scale request"),
    ("done", "the last host has started its replicas (component_scaled)"),
    ("placed", "inventories sum to 50"),
    ("served", "... and every host answers GET /fifty with 200"),
]


def _apply_table(samples: Samples) -> Table:
    rounds = len(samples["served"])
    table = Table(
        f"Apply to serving: {APPLY_REPLICAS} replicas of hello-wat over 3 hosts (17/17/16), "
        f"warm compile cache, ms after SpecStore.deploy() is called, {rounds} rounds",
        ["step", "median", "min", "max"],
    )
    for key, label in APPLY_STEPS:
        values = samples[key]
        table.add(label, fmt(median(values), 1), fmt(min(values), 1), fmt(max(values), 1))
    table.notes.append(
        "Each round puts a new version (untimed), deploys it, then undeploys and waits until "
        "no host runs it and the controller has nothing in flight."
    )
    return table


def _plan_table(cases: dict[str, tuple[int, list[float]]]) -> Table:
    runs = len(next(iter(cases.values()))[1])
    table = Table(
        f"reconcile() alone: {PLAN_APPS:,} apps over {PLAN_HOSTS} hosts, ms, {runs} runs",
        ["input", "commands", "median", "min", "max", f"aim <= {PLAN_GOAL_MS:.0f} ms"],
    )
    for label, (commands, times) in cases.items():
        table.add(label, f"{commands:,}", fmt(median(times), 1), fmt(min(times), 1),
                  fmt(max(times), 1), _verdict(median(times), PLAN_GOAL_MS))  # fmt: skip
    table.notes.append(
        "Each app: one component, spreadscaler of 3 (eu weight 2, us weight 1), an http-server "
        "route; hosts alternate zone=eu / zone=us. Steady state is the cold start's commands "
        "applied; the lost host is the one with the most replicas."
    )
    return table
