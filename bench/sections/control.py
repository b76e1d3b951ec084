"""Control-plane latency: how fast a ``scale`` serves traffic, and what one control call costs.

A real lattice, all local: nats-server (JetStream) in a temp dir and one host daemon as its
own process (``lattice host``), as an operator runs them (``control_lattice``). The bench
process is the client.

1. scale to first HTTP 200: each round scales a fresh component id (a real start, not a
   no-op), times the scale reply, then polls ``GET /<id>`` every millisecond until a 200.
   The compile cache is warm: that is the case the issue's 50 ms aim is about.
2. where that time goes: the steps of ``HostDaemon.apply`` replayed one by one in this
   process, against the same NATS and compile cache, interleaved with the rounds of (1)
   (``control_replay``).
3. link reads vs the size of the links bucket: hello-wat starts again, after adding 200
   deleted links (their delete markers), then 200 live links of other components.
4. request/reply: sequential ``inventory`` calls, the first reply to a ping, and a plain
   nats-py echo in another process (``bench.echo``) as the floor NATS itself sets.

This module runs the measurements in that order and builds their tables.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.context import Config, prepare_components
from bench.echo import ECHO_SUBJECT, EMPTY_MAP, echo_responder, wait_answering
from bench.procs import BenchProcessError
from bench.sections import Output
from bench.sections.control_lattice import (
    HOST_ID,
    Lattice,
    first_ok,
    get_status,
    http_link,
    link_keys,
    ping_first_reply_ms,
    running_lattice,
    stop_component,
)
from bench.sections.control_replay import KV_STEPS, Replay
from bench.stats import median, percentile
from bench.table import Table, fmt, p50_p90, verdict
from lattice import eventloop

TITLE = "control plane: scale to first HTTP 200, and control request/reply latency"

COMPONENTS = ["hello-wat", "hello"]
LABELS = {"hello-wat": "hello-wat (WAT, 2 KB)", "hello": "hello (componentize-py, 18 MB)"}
ROUNDS = 10
# Links added for (3), per kind (deleted, live): a lattice of ~100 components has this many.
CROWD_LINKS = 200
RPC_CALLS = 500
PING_CALLS = 200
STEADY_GETS = 50
GOAL_MS = 50.0

# Milliseconds (or counts) per key, one value per round.
Samples = dict[str, list[float]]


def run(config: Config) -> Output:
    wasm = prepare_components(COMPONENTS)
    with tempfile.TemporaryDirectory(prefix="bench-control-") as tmp:
        return Output(eventloop.run(_run(config.rounds_or(ROUNDS), wasm, Path(tmp))))


async def _run(rounds: int, wasm: dict[str, Path], tmp: Path) -> list[Table]:
    async with running_lattice(tmp) as lattice:
        return await _measure(lattice, rounds, wasm)


async def _measure(lattice: Lattice, rounds: int, wasm: dict[str, Path]) -> list[Table]:
    steady = {name: await _warm_up(lattice, name, wasm[name]) for name in COMPONENTS}
    replay = Replay(lattice)
    try:
        await replay.warm_up(wasm)
        starts = await _measure_starts(lattice, replay, rounds, wasm)
        crowded = await _measure_crowded(lattice, replay, max(1, rounds // 2), wasm)
        crowded.insert(0, ("only the starting component's link", starts))
    finally:
        replay.close()
    rpc = await _measure_rpc(lattice)
    return [
        _scale_table(starts, steady, rounds),
        _replay_table(starts, rounds),
        _links_table(crowded),
        _rpc_table(rpc),
    ]


# -- 1. scale to first HTTP 200 (and 2., the replay beside each start) --------------------


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
        await get_status(lattice, component_id)
        times.append((time.perf_counter() - started) * 1000)
    await stop_component(lattice, component_id, wasm)
    return median(times) or 0.0


async def _measure_starts(
    lattice: Lattice, replay: Replay, rounds: int, wasm: dict[str, Path]
) -> Samples:
    samples: Samples = defaultdict(list)
    for number in range(rounds):
        samples["keys"].append(await link_keys(lattice))
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
    await lattice.client.put_link(http_link(component_id))
    request = ScaleComponent(component_id=component_id, source=str(wasm))
    started = time.perf_counter()
    await lattice.client.scale(HOST_ID, request)
    replied = time.perf_counter()
    polls = await first_ok(lattice, component_id)
    answered = time.perf_counter()
    if stop_after:
        await stop_component(lattice, component_id, wasm)
    return (replied - started) * 1000, (answered - replied) * 1000, polls


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
        samples["keys"].append(await link_keys(lattice))
        component_id = f"crowded-{phase}-r{number}"
        reply_ms, _, _ = await _scale_round(lattice, component_id, wasm["hello-wat"])
        samples["hello-wat/reply"].append(reply_ms)
        for step, ms in (await replay.read_links(f"{component_id}-replay")).items():
            samples[f"hello-wat/{step}"].append(ms)
    return samples


# -- 4. request/reply of control calls --------------------------------------------------


async def _measure_rpc(lattice: Lattice) -> Samples:
    client, nc = lattice.client, lattice.nc
    inventory_subject = client.subjects.host_control(HOST_ID, "inventory")
    with echo_responder("control-echo", lattice.nats_url) as echo:
        await wait_answering(nc, echo)
        samples: Samples = {
            "echo": await _time_calls(lambda: nc.request(ECHO_SUBJECT, EMPTY_MAP, 2.0)),
            "inventory-raw": await _time_calls(
                lambda: nc.request(inventory_subject, EMPTY_MAP, 2.0)
            ),
            "inventory": await _time_calls(lambda: client.inventory(HOST_ID)),
            "ping": await _ping_samples(lattice),
        }
    # hosts() always waits its whole window; a few calls show that, no more are needed.
    samples["hosts"] = await _time_calls(client.hosts, calls=5, warmup=0)
    return samples


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
        took = await ping_first_reply_ms(lattice)
        if took is None:
            raise BenchProcessError(f"host {HOST_ID} did not answer a ping")
        times.append(took)
    return times


# -- tables ------------------------------------------------------------------------------


def _scale_table(samples: Samples, steady: dict[str, float], rounds: int) -> Table:
    table = Table(
        f"Scale to first HTTP 200, warm compile cache, ms, median / p90 of {rounds} rounds",
        ["component", "scale reply", "first 200 after reply", "scale to first 200",
         f"aim <= {GOAL_MS:.0f} ms (median)"],
    )  # fmt: skip
    for name in COMPONENTS:
        table.add(
            LABELS[name], p50_p90(samples[f"{name}/reply"]),
            p50_p90(samples[f"{name}/first-200"]), p50_p90(samples[f"{name}/total"]),
            verdict(median(samples[f"{name}/total"]), GOAL_MS),
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
