"""Distributed calls: a linked call to a component on another host, next to the in-process call.

A real two-host lattice, all local, set up as in tests/test_distributed.py: nats-server in a
temp dir and two host daemons as their own processes (``lattice host``). ``front`` answers
``GET /?name=Ada`` by calling ``greeter.greet`` through a link: in-process when the greeter
runs on the same host, over NATS (``lattice.invoke``) otherwise. On host bench-a,
front-local links to greeter-local (also on bench-a) and front-remote to greeter-remote (only
on bench-b), so both paths serve side by side and every round measures both.

The bench process is the client, and runs a greeter and two fronts of its own
(``HostRuntime``, wired to the host's ``host.exports.RemoteCalls`` for the remote path) for the
in-process rows. That lattice and the calls into it are ``distributed_lattice``; this
module times the calls and builds the tables. Measured, targets interleaved round by round:

1. sequential latency (one call in flight): the in-process linked call
   (``HostRuntime.invoke_sync`` on a worker thread: what front pays when greeter is local),
   ``HostRuntime.call`` (what the serving host does per remote call), the nats-py
   request/reply floor (an echo in another process, same payload), the lattice invocation
   (``lattice.invoke.invoke`` to bench-b, arguments and result through ``host.wire.codec``), the
   cross-host linked call as a host makes it (``RemoteCalls.invoke`` on a worker
   thread), ``front.handle`` in the bench process with greeter local vs on bench-b, and
   HTTP end to end through front on bench-a with greeter local vs remote;
2. throughput: 16 calls in flight for a fixed window; calls/s, latency, CPU per call;
3. where a cross-host call's time goes: each of its parts timed alone.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.aims import Figure, Measured
from bench.context import Config, prepare_components
from bench.loadgen import cpu_seconds, machine_busy_seconds
from bench.sections import Output
from bench.sections.distributed_lattice import (
    CALLEE,
    CALLER,
    IN_PROCESS,
    AsyncCall,
    Rig,
    loop_calls,
    running_rig,
    thread_calls,
)
from bench.stats import median, minus, percentile
from bench.table import Table, fmt, ratio, verdict
from lattice import eventloop

TITLE = "distributed calls: a linked call to another host over NATS vs the in-process call"

ROUNDS = 3
CALLS = 500  # sequential calls per round, per target
GETS = 200  # the same for targets through front (each is several times slower)
SLOW = {"front-inproc", "front-to-remote", "http-local", "http-remote"}
WARMUP_CALLS = 50
IN_FLIGHT = 16
DURATION_S = 1.5
WARMUP_S = 0.3  # of each throughput window: let the pools grow to their size first
PART_CALLS = 2000
GOAL_P50_MS = 0.5  # issue 12's aim
CODEC_PARTS = ["encode-params", "decode-params", "encode-result", "decode-result"]

# Sequential rows, in display order: key -> label.
LATENCY_ROWS = {
    "inproc-linked": "in-process linked call (HostRuntime.invoke_sync, worker thread)",
    "inproc-call": "in-process HostRuntime.call (on the event loop's thread)",
    "echo": "NATS floor: nats-py request/reply, echo in another process",
    "echo-header": "NATS floor + one header (wl-func), as invoke sends",
    "invoke": f"lattice invoke to {CALLEE} (encode, request/reply, decode)",
    "remote-linked": "cross-host linked call (RemoteCalls.invoke, worker thread)",
    "front-inproc": "front.handle in the bench process, greeter in-process (no HTTP)",
    "front-to-remote": f"front.handle in the bench process, greeter on {CALLEE} (no HTTP)",
    "http-local": "HTTP GET via front, greeter on the same host",
    "http-remote": "HTTP GET via front, greeter on another host",
}
# Computed rows: label -> (key, baseline key); the difference of the two rows' percentiles.
DIFFERENCES = {
    "cross-host cost of the linked call (remote - in-process linked)": (
        "remote-linked", "inproc-linked"),
    "cross-host cost inside front.handle (remote - in-process)": (
        "front-to-remote", "front-inproc"),
    "cross-host cost end to end (HTTP remote - HTTP local)": ("http-remote", "http-local"),
}  # fmt: skip
# Throughput rows, all run on the event loop with IN_FLIGHT concurrent callers.
LOAD_ROWS = {
    "inproc-call": "in-process HostRuntime.call (pool of 4, as a host)",
    "echo": "NATS floor: nats-py request/reply, echo in another process",
    "invoke": f"lattice invoke to {CALLEE}",
    "http-local": "HTTP GET via front, greeter on the same host",
    "http-remote": "HTTP GET via front, greeter on another host",
}
# Processes whose CPU time the throughput table reports, per call.
CPU_COLUMNS = ["bench", CALLER, CALLEE, "nats-server"]

Measure = Callable[[int], Awaitable[list[float]]]  # n calls -> µs per call


@dataclass
class Load:
    """One throughput window: latencies of calls started inside it, CPU seconds spent."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_s: dict[str, float | None] = field(default_factory=dict)


def run(config: Config) -> Output:
    wasm = prepare_components(["front", "greeter"])
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        return eventloop.run(_run(config, wasm, Path(tmp)))


async def _run(config: Config, wasm: dict[str, Path], tmp: Path) -> Output:
    async with running_rig(wasm, tmp, connections=IN_FLIGHT) as rig:
        return await _measure(rig, config)


def _measures(rig: Rig) -> dict[str, Measure]:
    on_loop = {key: _timed_on_loop(call) for key, call in loop_calls(rig).items()}
    on_thread = {key: _timed_on_thread(call) for key, call in thread_calls(rig).items()}
    both = on_loop | on_thread
    return {key: both[key] for key in LATENCY_ROWS}


def _timed_on_loop(call: AsyncCall) -> Measure:
    async def measure(calls: int) -> list[float]:
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            await call()
            times.append((time.perf_counter() - started) * 1e6)
        return times

    return measure


def _timed_on_thread(call: Callable[[], object]) -> Measure:
    # The whole loop runs on one worker thread: the event loop stays free to send and
    # receive the cross-host calls, as in a host, and is not timed as an extra hop.
    async def measure(calls: int) -> list[float]:
        return await asyncio.to_thread(_time_sync, call, calls)

    return measure


def _time_sync(call: Callable[[], object], calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e6)
    return times


# -- measuring -------------------------------------------------------------------------


async def _measure(rig: Rig, config: Config) -> Output:
    rounds, duration_s = config.rounds_or(ROUNDS), config.duration_or(DURATION_S)
    measures, calls = _measures(rig), loop_calls(rig)
    # Untimed: first calls, and every pool grown to its size under load.
    for measure in measures.values():
        await measure(WARMUP_CALLS)
    for key in LOAD_ROWS:
        await _closed_loop(calls[key], {}, 0.5)
    sequential: dict[str, list[float]] = defaultdict(list)
    loads: dict[str, list[Load]] = defaultdict(list)
    for _ in range(rounds):
        # Interleaved, so a busy phase of a shared machine hits every target.
        for key, measure in measures.items():
            sequential[key] += await measure(GETS if key in SLOW else CALLS)
        for key in LOAD_ROWS:
            loads[key].append(await _closed_loop(calls[key], rig.pids, duration_s))
    parts = await _measure_parts(rig)
    tables = [
        _latency_table(sequential, rounds),
        _load_table(loads, duration_s),
        _parts_table(parts, sequential),
    ]
    return Output(tables, {Figure.CROSS_HOST_P50_MS: _cross_host_p50(sequential["remote-linked"])})


def _cross_host_p50(samples: list[float]) -> Measured:
    p50_ms = (_pct(samples, 50) or 0.0) / 1000
    return Measured(p50_ms, f"RemoteCalls.invoke, {len(samples):,} sequential calls")


async def _closed_loop(call: AsyncCall, pids: dict[str, int | None], duration_s: float) -> Load:
    """IN_FLIGHT callers back to back; only calls started inside the window count."""
    load = Load()
    now = time.perf_counter()
    start, end = now + WARMUP_S, now + WARMUP_S + duration_s

    async def caller() -> None:
        while (started := time.perf_counter()) < end:
            try:
                await call()
                ok = True
            except Exception:  # counted, not fatal: the table shows errors
                ok = False
            if started >= start:
                if ok:
                    load.latencies_ms.append((time.perf_counter() - started) * 1000)
                else:
                    load.errors += 1

    callers = [asyncio.create_task(caller()) for _ in range(IN_FLIGHT)]
    await asyncio.sleep(start - time.perf_counter())
    before = _cpu(pids)
    await asyncio.sleep(end - time.perf_counter())
    after = _cpu(pids)
    await asyncio.gather(*callers)
    load.cpu_s = {name: minus(after[name], before[name]) for name in before}
    return load


def _cpu(pids: dict[str, int | None]) -> dict[str, float | None]:
    """CPU seconds so far per process (None: this one), and the whole machine's."""
    sample = {name: cpu_seconds(pid) for name, pid in pids.items()}
    sample["machine"] = machine_busy_seconds()
    return sample


async def _measure_parts(rig: Rig) -> dict[str, float]:
    """Median µs of each part of a cross-host call that can be timed alone."""
    codec = rig.codec
    result = await rig.runtime.call(IN_PROCESS, rig.export, "greet", *rig.args)
    encoded = codec.encode_result(result)
    parts = {
        "encode-params": _time_sync(lambda: codec.encode_params(rig.args), PART_CALLS),
        "decode-params": _time_sync(lambda: codec.decode_params(rig.payload), PART_CALLS),
        "encode-result": _time_sync(lambda: codec.encode_result(result), PART_CALLS),
        "decode-result": _time_sync(lambda: codec.decode_result(encoded), PART_CALLS),
        "hop": await asyncio.to_thread(_time_sync, _loop_hop(), PART_CALLS),
    }
    return {key: median(times) or 0.0 for key, times in parts.items()}


def _loop_hop() -> Callable[[], object]:
    """A worker thread's round trip through the event loop, as a linked call made it
    before worker threads had connections of their own (``lattice.direct``)."""
    loop = asyncio.get_running_loop()

    async def nothing() -> None:
        pass

    return lambda: asyncio.run_coroutine_threadsafe(nothing(), loop).result()


# -- tables ----------------------------------------------------------------------------


def _ms(us: float | None) -> str:
    return fmt(None if us is None else us / 1000, 3)


def _pct(samples: Sequence[float], pct: float) -> float | None:
    return percentile(sorted(samples), pct)


def _latency_table(sequential: dict[str, list[float]], rounds: int) -> Table:
    table = Table(
        f"Sequential calls (one in flight), ms, all calls of {rounds} interleaved rounds",
        ["call", "p50", "p90", "p99", "p50 vs in-process linked", "calls"],
    )
    base = _pct(sequential["inproc-linked"], 50)
    for key, label in LATENCY_ROWS.items():
        samples = sequential[key]
        table.add(label, *(_ms(_pct(samples, p)) for p in (50, 90, 99)),
                  ratio(_pct(samples, 50), base), f"{len(samples):,}")  # fmt: skip
    for label, (key, base_key) in DIFFERENCES.items():
        diffs = [minus(_pct(sequential[key], p), _pct(sequential[base_key], p))
                 for p in (50, 90, 99)]  # fmt: skip
        table.add(label, *(_ms(d) for d in diffs), "-", "-")
    table.notes += _latency_notes(sequential)
    return table


def _latency_notes(sequential: dict[str, list[float]]) -> list[str]:
    p50_ms = (_pct(sequential["remote-linked"], 50) or 0.0) / 1000
    return [
        f"Aim: cross-host linked call p50 <= {GOAL_P50_MS:g} ms on loopback: "
        f"{verdict(p50_ms, GOAL_P50_MS, 3)} "
        f"({p50_ms:.3f} ms).",
        'The greeter call: greet({name: "Ada", times: 1, style: plain, tags: [], '
        "signature: none}) -> ok({text, served-by, length}); 47 bytes of arguments, 46 of "
        "result on the wire. Differences are differences of the percentiles.",
    ]


def _load_table(loads: dict[str, list[Load]], duration_s: float) -> Table:
    table = Table(
        f"Throughput, {IN_FLIGHT} calls in flight, median of {len(loads['echo'])} rounds x "
        f"{duration_s:g} s",
        ["call", "calls/s", "calls/s per round", "p50 ms", "p99 ms",
         *(f"CPU µs/call {name}" for name in CPU_COLUMNS), "other CPU %", "errors"],
    )  # fmt: skip
    for key, label in LOAD_ROWS.items():
        table.add(label, *_load_cells(loads[key], duration_s))
    from host.component_request import DEFAULT_MAX_CONCURRENCY

    table.notes += [
        "CPU µs/call: CPU time (all threads) of the bench process (the caller, and the "
        f"in-process greeter), host {CALLER} (fronts, greeter-local), host {CALLEE} "
        "(greeter-remote) and nats-server, per call. other CPU % (of one core): the rest "
        "of the machine, including the echo responder on the floor row.",
        f"In-process: the pool has {DEFAULT_MAX_CONCURRENCY} instances and worker threads, "
        f"a host's default; the {IN_FLIGHT} callers queue for them.",
    ]
    return table


def _load_cells(rounds: list[Load], duration_s: float) -> list[str]:
    rates = [len(load.latencies_ms) / duration_s for load in rounds]
    cells = [fmt(median(rates), 0), "/".join(fmt(rate, 0) for rate in rates)]
    cells += [fmt(median([_pct(load.latencies_ms, p) or 0.0 for load in rounds]), 2)
              for p in (50, 99)]  # fmt: skip
    for name in CPU_COLUMNS:
        cells.append(fmt(median(_per_call_us(rounds, name)), 0))
    cells.append(fmt(median([_other_pct(load, duration_s) for load in rounds]), 0))
    cells.append(str(sum(load.errors for load in rounds)))
    return cells


def _per_call_us(rounds: list[Load], name: str) -> list[float]:
    return [cpu / len(load.latencies_ms) * 1e6 for load in rounds
            if (cpu := load.cpu_s.get(name)) is not None and load.latencies_ms]  # fmt: skip


def _other_pct(load: Load, duration_s: float) -> float:
    machine = load.cpu_s.get("machine") or 0.0
    known = sum(load.cpu_s.get(name) or 0.0 for name in CPU_COLUMNS)
    return max(0.0, machine - known) / duration_s * 100


def _parts_table(parts: dict[str, float], sequential: dict[str, list[float]]) -> Table:
    """The cross-host call split into measured parts; two rows are differences of rows."""
    p50 = {key: _pct(samples, 50) or 0.0 for key, samples in sequential.items()}
    codec = sum(parts[key] for key in CODEC_PARTS)
    wrappers = p50["invoke"] - p50["echo-header"] - p50["inproc-call"] - codec
    table = Table(
        "Where a cross-host linked call's time goes, µs, p50 (medians of the parts)",
        ["part", "µs", "how it is known"],
    )
    for label, us, how in [
        ("NATS request/reply with one header, another process", p50["echo-header"],
         "measured: the floor row"),
        ("callee: HostRuntime.call (greet in wasm, on the loop's thread)", p50["inproc-call"],
         "measured in the bench process"),
        ("codec: encode + decode the arguments and the result", codec, "measured alone"),
        ("callee and invoke wrappers, two event loops' scheduling", wrappers,
         "lattice invoke - the three above"),
        ("= lattice invoke from the event loop", p50["invoke"], "measured"),
        ("caller: a worker thread's own connection, vs the loop's", p50["remote-linked"]
         - p50["invoke"], "cross-host linked call - lattice invoke"),
        ("= cross-host linked call", p50["remote-linked"], "measured"),
        ("for comparison: in-process linked call", p50["inproc-linked"], "measured"),
    ]:  # fmt: skip
        table.add(label, fmt(us, 1), how)
    steps = ", ".join(f"{key} {parts[key]:.1f}" for key in CODEC_PARTS)
    table.notes += [
        f"Codec steps (µs, median of {PART_CALLS}): {steps}.",
        f"A no-op worker thread -> event loop -> back hop alone (run_coroutine_threadsafe "
        f"of an empty coroutine), which a worker's own connection saves, takes "
        f"{parts['hop']:.1f} µs.",
    ]
    return table
