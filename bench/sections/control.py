"""Control-plane latency: how fast a ``scale`` serves traffic, and what one control call costs.

A real lattice, all local: nats-server (JetStream) in a temp dir and one host daemon as its
own process (``lattice host``), as an operator runs them. The bench process is the client.

1. scale to first HTTP 200: each round scales a fresh component id (a real start, not a
   no-op), times the scale reply, then polls ``GET /<id>`` every millisecond until a 200.
   The compile cache is warm: that is the case the issue's 50 ms aim is about.
2. where that time goes: the steps of ``HostDaemon.apply`` replayed one by one in this
   process, against the same NATS and compile cache, interleaved with the rounds of (1).
3. link reads vs the size of the links bucket: hello-wat starts again, after adding 200
   deleted links (their delete markers), then 200 live links of other components.
4. request/reply: sequential ``inventory`` calls, the first reply to a ping, and a plain
   nats-py echo in another process as the floor NATS itself sets.

``python -m bench.sections.control echo NATS_URL`` is that echo responder.
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bench.context import CACHE_DIR, LOG_DIR, Config, prepare_components
from bench.procs import READY, BenchProcessError, Server, spawn_server, stop, wait_ready
from bench.stats import median, percentile
from bench.table import Table, fmt

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from wasmtime import component as wc

    from host.runtime.engine import WasmEngine
    from lattice.client import LatticeClient
    from lattice.messages import Link
    from lattice.state import LatticeState

TITLE = "control plane: scale to first HTTP 200, and control request/reply latency"

COMPONENTS = ["hello-wat", "hello"]
LABELS = {"hello-wat": "hello-wat (WAT, 2 KB)", "hello": "hello (componentize-py, 18 MB)"}
HOST_ID = "bench-host"
ROUNDS = 10
# Links added for (3), per kind (deleted, live): a lattice of ~100 components has this many.
CROWD_LINKS = 200
RPC_CALLS = 500
PING_CALLS = 200
STEADY_GETS = 50
POLL_S = 0.001
GOAL_MS = 50.0
ECHO_SUBJECT = "bench.control.echo"
# msgpack of an empty map: what an inventory or ping request carries.
EMPTY_MAP = b"\x80"
KV_STEPS = ["read links from and to the component (KV, one scan)"]

# Milliseconds (or counts) per key, one value per round.
Samples = dict[str, list[float]]


@dataclass
class Lattice:
    """What the measurements talk to: the host's HTTP port and a control client."""

    nc: Client
    client: LatticeClient
    http: aiohttp.ClientSession
    http_port: int

    def url(self, component_id: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/{component_id}"


@dataclass
class Laps:
    """A stopwatch that files each lap under a label."""

    ms: Samples = field(default_factory=lambda: defaultdict(list))
    _last: float = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()

    def lap(self, label: str) -> None:
        now = time.perf_counter()
        self.ms[label].append((now - self._last) * 1000)
        self._last = now


def run(config: Config) -> list[Table]:
    wasm = prepare_components(COMPONENTS)
    with tempfile.TemporaryDirectory(prefix="bench-control-") as tmp:
        return asyncio.run(_run(config.rounds_or(ROUNDS), wasm, Path(tmp)))


async def _run(rounds: int, wasm: dict[str, Path], tmp: Path) -> list[Table]:
    # Imported here so that listing sections does not load the lattice packages.
    from lattice.natsd import NatsServer

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    nats_server = NatsServer(tmp / "nats", log_file=LOG_DIR / "control-nats.log").start()
    try:
        host = _start_host(nats_server.url, tmp / "host")
        try:
            return await _connect_and_measure(nats_server.url, host, rounds, wasm)
        finally:
            stop(host, timeout_s=15.0)
    finally:
        nats_server.stop()


def _start_host(nats_url: str, state_dir: Path) -> Server:
    from lattice.natsd import free_port

    # The daemon's compile cache is the bench's, already filled by prepare_components:
    # otherwise the first start would compile the 18 MB component for seconds.
    state_dir.mkdir(parents=True)
    (state_dir / "compile-cache").symlink_to(CACHE_DIR, target_is_directory=True)
    port = free_port()
    log_path = LOG_DIR / "control-host.log"
    lattice_cli = str(Path(sys.executable).parent / "lattice")
    args = ["host", "--nats-url", nats_url, "--http-port", str(port)]
    args += ["--state-dir", str(state_dir), "--host-id", HOST_ID]
    with open(log_path, "w") as log:
        # Own session: a Ctrl-C reaches only the bench, which then stops the host by pid.
        process = subprocess.Popen(
            [lattice_cli, *args], stdout=log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
    return Server("control-host", process, log_path, port)


async def _connect_and_measure(
    nats_url: str, host: Server, rounds: int, wasm: dict[str, Path]
) -> list[Table]:
    from lattice.client import LatticeClient
    from lattice.connection import NatsOptions, connect

    # No reconnect: closing at the end is then not reported as a lost connection.
    nc = await connect(NatsOptions(nats_url, name="bench-control"), reconnect=False)
    try:
        async with aiohttp.ClientSession() as http:
            lattice = Lattice(nc, LatticeClient(nc), http, host.port)
            await _wait_for_host(lattice, host)
            return await _measure(lattice, nats_url, rounds, wasm)
    finally:
        await nc.close()


async def _measure(
    lattice: Lattice, nats_url: str, rounds: int, wasm: dict[str, Path]
) -> list[Table]:
    steady = {name: await _warm_up(lattice, name, wasm[name]) for name in COMPONENTS}
    replay = Replay(lattice)
    try:
        await replay.warm_up(wasm)
        starts = await _measure_starts(lattice, replay, rounds, wasm)
        crowded = await _measure_crowded(lattice, replay, max(1, rounds // 2), wasm)
        crowded.insert(0, ("only the starting component's link", starts))
    finally:
        replay.close()
    rpc = await _measure_rpc(lattice, nats_url)
    return [
        _scale_table(starts, steady, rounds),
        _replay_table(starts, rounds),
        _links_table(crowded),
        _rpc_table(rpc),
    ]


async def _wait_for_host(lattice: Lattice, host: Server, timeout_s: float = 60.0) -> None:
    """Ready once the host answers a ping (it subscribes only when fully started)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if host.process.poll() is not None:
            raise BenchProcessError(f"the host exited:\n{_tail(host.log_path)}")
        if await _ping_first_reply_ms(lattice, timeout_s=0.2) is not None:
            return
        await asyncio.sleep(0.1)
    raise BenchProcessError(f"the host did not answer pings:\n{_tail(host.log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- 1. scale to first HTTP 200 ------------------------------------------------------


async def _warm_up(lattice: Lattice, name: str, wasm: Path) -> float:
    """One untimed start (page cache, lazy imports in the host), then steady-state GETs.

    Returns the median ms of a GET to the running component: the floor under "first
    200 after reply", which is one such GET when the route is already in place.
    """
    component_id = f"{name}-warmup"
    await _scale_round(lattice, component_id, wasm, stop_after=False)
    times = []
    for _ in range(STEADY_GETS):
        started = time.perf_counter()
        await _get_status(lattice, component_id)
        times.append((time.perf_counter() - started) * 1000)
    await _stop(lattice, component_id, wasm)
    return median(times) or 0.0


async def _measure_starts(
    lattice: Lattice, replay: Replay, rounds: int, wasm: dict[str, Path]
) -> Samples:
    samples: Samples = defaultdict(list)
    for number in range(rounds):
        samples["keys"].append(await _link_keys(lattice))
        # Interleaved, so a busy phase of a shared machine hits every kind of start, and
        # the replay sees a links bucket of the same size as the daemon does.
        for name in COMPONENTS:
            reply_ms, first_ok_ms, polls = await _scale_round(
                lattice, f"{name}-r{number}", wasm[name]
            )
            samples[f"{name}/reply"].append(reply_ms)
            samples[f"{name}/first-200"].append(first_ok_ms)
            samples[f"{name}/total"].append(reply_ms + first_ok_ms)
            samples[f"{name}/polls"].append(polls)
            for step, ms in (await replay.start(f"{name}-replay{number}", wasm[name])).items():
                samples[f"{name}/{step}"].append(ms)
    return samples


async def _scale_round(
    lattice: Lattice, component_id: str, wasm: Path, stop_after: bool = True
) -> tuple[float, float, int]:
    """Scale a new component to 1: ms to the reply, ms from it to the first 200, GETs."""
    from lattice.messages import ScaleComponent

    # The link is written before the clock starts: the host reads it during the start.
    await lattice.client.put_link(_http_link(component_id))
    request = ScaleComponent(component_id=component_id, source=str(wasm))
    started = time.perf_counter()
    await lattice.client.scale(HOST_ID, request)
    replied = time.perf_counter()
    polls = await _first_ok(lattice, component_id)
    answered = time.perf_counter()
    if stop_after:
        await _stop(lattice, component_id, wasm)
    return (replied - started) * 1000, (answered - replied) * 1000, polls


async def _stop(lattice: Lattice, component_id: str, wasm: Path) -> None:
    """Scale to 0 and drop the link, so neither the host nor the lattice accumulates."""
    from lattice.messages import ScaleComponent

    request = ScaleComponent(component_id=component_id, source=str(wasm), count=0)
    await lattice.client.scale(HOST_ID, request)
    await _delete_link(lattice, _http_link(component_id))


async def _delete_link(lattice: Lattice, link: Link) -> None:
    """Delete the link, then purge its delete marker.

    The lattice never purges markers and every start scans them (section 3 measures
    that on purpose); purging its own keeps the bench's rounds from growing the bucket.
    """
    from lattice.kv import encode_key
    from lattice.messages import LinkRef

    ref = LinkRef(source_id=link.source_id, namespace=link.namespace, package=link.package,
                  name=link.name)  # fmt: skip
    await lattice.client.delete_link(ref)
    bucket = lattice.client.subjects.links_bucket
    subject = f"$KV.{bucket}.{encode_key(link.key)}"
    await lattice.nc.jetstream().purge_stream(f"KV_{bucket}", subject=subject)


def _http_link(component_id: str) -> Link:
    from lattice.messages import Link

    return Link(source_id="http-server", target=component_id, namespace="wasmlattice",
                package="http", name=component_id, config={"path": f"/{component_id}"})  # fmt: skip


async def _first_ok(lattice: Lattice, component_id: str, timeout_s: float = 10.0) -> int:
    """GET until a 200 (polling every ``POLL_S``); returns how many GETs it took."""
    deadline = time.monotonic() + timeout_s
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        if await _get_status(lattice, component_id) == 200:
            return polls
        await asyncio.sleep(POLL_S)
    raise BenchProcessError(f"{component_id} did not answer 200 within {timeout_s} s")


async def _get_status(lattice: Lattice, component_id: str) -> int:
    async with lattice.http.get(lattice.url(component_id)) as response:
        await response.read()
        return response.status


async def _link_keys(lattice: Lattice) -> float:
    """Keys the links bucket's stream lists; a deleted link stays listed (its marker)."""
    stream = f"KV_{lattice.client.subjects.links_bucket}"
    info = await lattice.nc.jetstream().stream_info(stream, subjects_filter=">")
    return float(len(info.state.subjects or {}))


# -- 2. where the time goes: HostDaemon.apply, step by step -----------------------------


class Replay:
    """Runs the steps of a daemon's start in this process, timing each one."""

    def __init__(self, lattice: Lattice) -> None:
        from host.runtime.engine import WasmEngine
        from lattice.state import LatticeState

        self.lattice = lattice
        self.engine = WasmEngine(CACHE_DIR)
        self.state = LatticeState(lattice.nc, lattice.client.subjects, source="bench")

    async def warm_up(self, wasm: dict[str, Path]) -> None:
        """Untimed: opens the links bucket once, as a running daemon already has."""
        for name in COMPONENTS:
            await self.start(f"{name}-replay-warmup", wasm[name])

    async def start(self, component_id: str, path: Path) -> dict[str, float]:
        """One start with its HTTP link in place; returns ms per step."""
        link = _http_link(component_id)
        await self.lattice.client.put_link(link)
        laps = Laps()
        try:
            await _replay_start(self.state, self.engine, component_id, path, laps)
        finally:
            await _delete_link(self.lattice, link)
        return {step: ms[0] for step, ms in laps.ms.items()}

    async def read_links(self, component_id: str) -> dict[str, float]:
        """Only the two link reads of a start."""
        laps = Laps()
        laps.start()
        await _read_links(self.state, component_id, laps)
        return {step: ms[0] for step, ms in laps.ms.items()}

    def close(self) -> None:
        self.engine.close()


async def _read_links(state: LatticeState, component_id: str, laps: Laps) -> None:
    # HostDaemon.apply reads the links from and to the component in one scan.
    await state.links_of(component_id)
    laps.lap(KV_STEPS[0])


async def _replay_start(
    state: LatticeState, engine: WasmEngine, component_id: str, path: Path, laps: Laps
) -> None:
    """What ``HostDaemon.apply`` + ``HostRuntime.start`` do for a new component, timed."""
    from host.runtime.bindings import Grants, build_linker, exported_interfaces, new_wasi_config
    from host.runtime.loader import fetch_component
    from host.runtime.pool import InstancePool, Limits

    laps.start()
    await _read_links(state, component_id, laps)
    wasm = await fetch_component(str(path))
    laps.lap("fetch: read the .wasm file")
    digest = hashlib.sha256(wasm).hexdigest()
    laps.lap("sha256 digest of the bytes")
    compiled = await asyncio.to_thread(_load_cached, engine, digest, str(path), laps)
    laps.lap("hop back to the event loop")
    linker = build_linker(engine.engine, compiled, Grants(component_id, asyncio.get_running_loop()))
    laps.lap("build the linker (import checks, WASI)")
    pool = InstancePool(component_id, engine, compiled, linker,
                        lambda: new_wasi_config(component_id), Limits())  # fmt: skip
    await pool.warm(1)
    laps.lap("instantiate one instance (+ its worker thread)")
    exported_interfaces(engine.engine, compiled)
    laps.lap("list exports")
    await pool.close()


def _load_cached(engine: WasmEngine, digest: str, source: str, laps: Laps) -> wc.Component:
    """``WasmEngine.compile`` on a cache hit, split into its two costs."""
    from wasmtime import component as wc

    laps.lap("hop to a worker thread")
    cached = engine._cache_path(digest)
    laps.lap("compile-cache key")
    if cached is None or not cached.exists():
        raise BenchProcessError(f"{source} is not in the compile cache {CACHE_DIR}")
    compiled = wc.Component.deserialize_file(engine.engine, str(cached))
    laps.lap("deserialize the compiled artifact")
    return compiled


# -- 3. link reads with more links in the lattice ----------------------------------------


async def _measure_crowded(
    lattice: Lattice, replay: Replay, rounds: int, wasm: dict[str, Path]
) -> list[tuple[str, Samples]]:
    """hello-wat starts (the cheapest) with more keys in the links bucket, two ways."""
    phases = []
    await _add_links(lattice, "gone", delete=True)
    label = f"+ {CROWD_LINKS} deleted links (delete markers)"
    phases.append((label, await _crowded_rounds(lattice, replay, "gone", rounds, wasm)))
    await _add_links(lattice, "other", delete=False)
    label = f"+ {CROWD_LINKS} live links of other components, too"
    phases.append((label, await _crowded_rounds(lattice, replay, "live", rounds, wasm)))
    return phases


async def _add_links(lattice: Lattice, prefix: str, delete: bool) -> None:
    from lattice.messages import Link, LinkRef

    for number in range(CROWD_LINKS):
        link = Link(source_id=f"{prefix}-{number}", target="keyvalue", config={"bucket": "b"})
        await lattice.client.put_link(link)
        if delete:  # through the client, as an operator would: the marker stays
            await lattice.client.delete_link(LinkRef(source_id=link.source_id))
    # Let the host work through the link events (each a no-op for it) before timing.
    await lattice.client.inventory(HOST_ID)
    await asyncio.sleep(0.2)


async def _crowded_rounds(
    lattice: Lattice, replay: Replay, phase: str, rounds: int, wasm: dict[str, Path]
) -> Samples:
    samples: Samples = defaultdict(list)
    for number in range(rounds):
        samples["keys"].append(await _link_keys(lattice))
        component_id = f"crowded-{phase}-r{number}"
        reply_ms, _, _ = await _scale_round(lattice, component_id, wasm["hello-wat"])
        samples["hello-wat/reply"].append(reply_ms)
        for step, ms in (await replay.read_links(f"{component_id}-replay")).items():
            samples[f"hello-wat/{step}"].append(ms)
    return samples


# -- 4. request/reply of control calls --------------------------------------------------


async def _measure_rpc(lattice: Lattice, nats_url: str) -> Samples:
    client, nc = lattice.client, lattice.nc
    inventory_subject = client.subjects.host_control(HOST_ID, "inventory")
    echo = spawn_server("control-echo", "bench.sections.control", "echo", nats_url)
    try:
        wait_ready(echo)
        await _wait_for_echo(nc, echo)
        samples: Samples = {
            "echo": await _time_calls(lambda: nc.request(ECHO_SUBJECT, EMPTY_MAP, 2.0)),
            "inventory-raw": await _time_calls(
                lambda: nc.request(inventory_subject, EMPTY_MAP, 2.0)
            ),
            "inventory": await _time_calls(lambda: client.inventory(HOST_ID)),
            "ping": await _ping_samples(lattice),
        }
    finally:
        stop(echo)
    # hosts() always waits its whole window; a few calls show that, no more are needed.
    samples["hosts"] = await _time_calls(client.hosts, calls=5, warmup=0)
    return samples


async def _wait_for_echo(nc: Client, echo: Server, timeout_s: float = 5.0) -> None:
    """The responder subscribed before saying READY; this guards the measurement anyway."""
    import nats.errors

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            await nc.request(ECHO_SUBJECT, EMPTY_MAP, 0.5)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.05)
    raise BenchProcessError(f"the echo responder does not answer:\n{_tail(echo.log_path)}")


async def _time_calls(
    call: Callable[[], Awaitable[object]], calls: int = RPC_CALLS, warmup: int = 20
) -> list[float]:
    for _ in range(warmup):
        await call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _ping_samples(lattice: Lattice) -> list[float]:
    times = []
    for _ in range(PING_CALLS):
        took = await _ping_first_reply_ms(lattice)
        if took is None:
            raise BenchProcessError(f"host {HOST_ID} did not answer a ping")
        times.append(took)
    return times


async def _ping_first_reply_ms(lattice: Lattice, timeout_s: float = 2.0) -> float | None:
    """Time from publishing a ping to its first reply: what ``hosts()`` could return after.

    ``LatticeClient.hosts()`` waits a fixed window instead, since it cannot know how many
    hosts will answer; this is the latency under that window.
    """
    nc = lattice.nc
    inbox = nc.new_inbox()
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def on_reply(msg: Msg) -> None:
        # An empty message is a "no responders" status, not a host.
        if msg.data and not first.done():
            first.set_result(time.perf_counter())

    # Subscribed before the clock starts, as hosts() is: the round trip is what is timed.
    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        started = time.perf_counter()
        await nc.publish(lattice.client.subjects.ping, EMPTY_MAP, reply=inbox)
        replied = await asyncio.wait_for(first, timeout_s)
    except TimeoutError:
        return None
    finally:
        await sub.unsubscribe()
    return (replied - started) * 1000


# -- tables ------------------------------------------------------------------------------


def _p50_p90(values: Sequence[float]) -> str:
    ordered = sorted(values)
    return f"{fmt(median(ordered))} / {fmt(percentile(ordered, 90))}"


def _scale_table(samples: Samples, steady: dict[str, float], rounds: int) -> Table:
    table = Table(
        f"Scale to first HTTP 200, warm compile cache, ms, median / p90 of {rounds} rounds",
        ["component", "scale reply", "first 200 after reply", "scale to first 200",
         f"aim <= {GOAL_MS:.0f} ms (median)"],
    )  # fmt: skip
    for name in COMPONENTS:
        total = median(samples[f"{name}/total"]) or 0.0
        table.add(
            LABELS[name], _p50_p90(samples[f"{name}/reply"]),
            _p50_p90(samples[f"{name}/first-200"]), _p50_p90(samples[f"{name}/total"]),
            "met" if total <= GOAL_MS else f"missed by {total - GOAL_MS:.0f} ms",
        )  # fmt: skip
    polls = int(max(max(samples[f"{name}/polls"]) for name in COMPONENTS))
    steady_text = ", ".join(f"{fmt(steady[name], 2)} ms ({name})" for name in COMPONENTS)
    table.notes += [
        "scale reply: `client.scale()` of a fresh component id (a real start) until its "
        "reply; first 200 after reply: GET /<id> (aiohttp, keep-alive) every 1 ms until a 200.",
        f"A GET to an already running component takes {steady_text} here (median of "
        f"{STEADY_GETS}): the floor under the first-200 column. The host adds the route "
        f"before it replies; the most GETs any round needed for its first 200: {polls}.",
    ]
    return table


def _replay_table(samples: Samples, rounds: int) -> Table:
    table = Table(
        f"Where a start's time goes: HostDaemon.apply replayed step by step in the bench "
        f"process, ms, median of {rounds} rounds",
        ["step", *(LABELS[name] for name in COMPONENTS)],
    )
    sums = dict.fromkeys(COMPONENTS, 0.0)
    for step in _steps(samples):
        medians = {name: median(samples[f"{name}/{step}"]) or 0.0 for name in COMPONENTS}
        for name in COMPONENTS:
            sums[name] += medians[name]
        table.add(step, *(fmt(medians[name], 2) for name in COMPONENTS))
    replies = {name: median(samples[f"{name}/reply"]) or 0.0 for name in COMPONENTS}
    table.add("sum of the steps", *(fmt(sums[name], 2) for name in COMPONENTS))
    table.add("scale reply from the daemon (table above)",
              *(fmt(replies[name], 2) for name in COMPONENTS))  # fmt: skip
    table.add("difference: request/reply, decode, events, route, other process",
              *(fmt(replies[name] - sums[name], 2) for name in COMPONENTS))  # fmt: skip
    table.notes.append(
        "The replay runs the daemon's own library calls (LatticeState.links/links_to, "
        "fetch_component, the compile cache, build_linker, InstancePool.warm(1)) against the "
        "same nats-server and compile cache, right after each daemon start (same bucket size)."
    )
    return table


def _steps(samples: Samples) -> list[str]:
    """Replay step labels in the order they ran (dicts keep insertion order)."""
    prefix = f"{COMPONENTS[0]}/"
    skip = {"reply", "first-200", "total", "polls"}
    return [key[len(prefix) :] for key in samples if key.startswith(prefix)
            and key[len(prefix) :] not in skip]  # fmt: skip


def _links_table(phases: list[tuple[str, Samples]]) -> Table:
    table = Table(
        "Link reads during a start vs keys in the links bucket, ms, median",
        ["links bucket", "keys scanned", KV_STEPS[0], "hello-wat scale reply"],
    )
    for label, samples in phases:
        # Counted before each start; the starting component's own link comes on top.
        low, high = min(samples["keys"]) + 1, max(samples["keys"]) + 1
        table.add(
            label, f"{low:.0f}" if low == high else f"{low:.0f}-{high:.0f}",
            *(fmt(median(samples[f"hello-wat/{step}"]), 2) for step in KV_STEPS),
            fmt(median(samples["hello-wat/reply"]), 2),
        )  # fmt: skip
    table.notes.append(
        "Keys scanned: subjects in the bucket's stream when the start reads it. Deleting "
        "a link removes its subject (no marker), so only live links cost a read."
    )
    return table


def _rpc_table(samples: Samples) -> Table:
    table = Table(
        "Control request/reply, sequential, ms", ["call", "median", "p90", "p99", "calls"]
    )
    labels = {
        "echo": "nats-py request, echo responder in another process (floor)",
        "inventory-raw": "inventory request, reply not decoded",
        "inventory": "client.inventory(host_id)",
        "ping": "ping: first host reply",
        "hosts": "client.hosts() (waits its whole window)",
    }
    for key, label in labels.items():
        ordered = sorted(samples[key])
        table.add(label, fmt(median(ordered), 3), fmt(percentile(ordered, 90), 3),
                  fmt(percentile(ordered, 99), 3), len(ordered))  # fmt: skip
    table.notes.append(
        "hosts() publishes one ping and returns after a fixed wait_s (0.3 s by default) "
        "however fast hosts answer, so its latency is that window; the ping row is the first "
        "reply's latency."
    )
    return table


# -- the echo responder (its own process) ------------------------------------------------


async def _echo_main(nats_url: str) -> None:
    from bench.serve import _exit_when_orphaned
    from lattice.connection import NatsOptions, connect

    nc = await connect(NatsOptions(nats_url, name="bench-echo"), reconnect=False)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(ECHO_SUBJECT, cb=echo)
    await nc.flush()  # subscribed on the server before the bench is told we are ready
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    watchdog = asyncio.create_task(_exit_when_orphaned(stopped))
    print(READY, 0, flush=True)
    try:
        await stopped.wait()
    finally:
        watchdog.cancel()
        await nc.close()


if __name__ == "__main__":
    if sys.argv[1:2] != ["echo"] or len(sys.argv) != 3:
        raise SystemExit(__doc__)
    asyncio.run(_echo_main(sys.argv[2]))
