"""Per-call overhead of calling into a component, layer by layer, in this process.

Three ways to make the same call, each adding one layer on top of the previous:

- direct: ``func(store, *args)`` (a ``FastFunc``) on an instance taken from the
  pool, on the calling thread (the converters and the canonical ABI only);
- pool._call: the pool's synchronous call path on the calling thread (take and
  put back the instance, arm the epoch deadline, look up the export);
- runtime.call: what the provider uses: ``await HostRuntime.call`` (concurrency
  slot, then the call tried on the event loop's thread, ``host.runtime.inline``; a
  call it gives up, as log-once's logging is not, runs again on a worker thread).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.context import CACHE_DIR, Config, prepare_components
from bench.sections import Output
from bench.stats import median, minus
from bench.table import Table, fmt, ratio
from lattice import eventloop

if TYPE_CHECKING:
    from host.runtime.components import HostRuntime
    from host.runtime.workers import Workers

TITLE = "per-call overhead: wasmtime call vs pool vs HostRuntime.call (on the loop's thread)"

ROUNDS = 5
CALLS = 2000
WARMUP_CALLS = 200
MODES = ["direct", "pool._call", "runtime.call"]

# Per (case label, mode): µs per call, one value per round.
Timings = dict[tuple[str, str], list[float]]
# The key of the reference timing: a no-op round trip through a pool's executor.
BARE_HOP = ("worker hop (no-op)", "")


@dataclass(frozen=True)
class Case:
    label: str
    component: str
    interface: str
    func: str
    args: tuple[Any, ...] = ()


def _cases() -> list[Case]:
    from providers import contracts
    from providers.http_server import HttpRequest

    get = HttpRequest("GET", "/", "", [], b"")
    calls = "wasmlattice:probe/calls@0.1.0"
    return [
        Case("probe noop (no host call)", "probe", calls, "noop"),
        Case("probe log-once (1 host call)", "probe", calls, "log-once"),
        Case("hello-wat handle (WAT)", "hello-wat", contracts.HTTP_HANDLER, "handle", (get,)),
        Case("hello handle (componentize-py)", "hello", contracts.HTTP_HANDLER, "handle", (get,)),
    ]


def run(config: Config) -> Output:
    return Output(eventloop.run(_run(config)))


async def _run(config: Config) -> list[Table]:
    # Imported here so that listing sections does not load wasmtime.
    from host.runtime.components import ComponentSpec, HostRuntime

    cases = _cases()
    names = sorted({case.component for case in cases})
    wasm = prepare_components(names)
    runtime = HostRuntime(CACHE_DIR)
    try:
        for name in names:
            await runtime.start(ComponentSpec(name, str(wasm[name])))
        timings = await _measure(runtime, cases, config.rounds_or(ROUNDS))
    finally:
        await runtime.close()
    return [_table(cases, timings, config.rounds_or(ROUNDS))]


async def _measure(runtime: HostRuntime, cases: list[Case], rounds: int) -> Timings:
    timings: Timings = {(c.label, m): [] for c in cases for m in MODES}
    timings[BARE_HOP] = []
    executor = runtime.get(cases[0].component).pool._executor
    for _ in range(rounds):
        # Interleaved, so noise from a shared machine spreads over every case and mode.
        for case in cases:
            for mode in MODES:
                timings[case.label, mode].append(await _per_call_us(runtime, case, mode))
        timings[BARE_HOP].append(await _bare_hop_us(executor))
    return timings


async def _bare_hop_us(executor: Workers) -> float:
    """What the thread hop alone costs on this machine, without wasm or the pool."""

    async def hop() -> None:
        await executor.submit(_nothing)

    return await _time_async(hop)


def _nothing() -> None:
    pass


async def _per_call_us(runtime: HostRuntime, case: Case, mode: str) -> float:
    if mode == "runtime.call":
        args = (case.component, case.interface, case.func, *case.args)
        return await _time_async(lambda: runtime.call(*args))
    pool = runtime.get(case.component).pool
    if mode == "pool._call":
        return _time_sync(lambda: pool._call(case.interface, case.func, case.args))
    # Borrow one idle instance; put it back so the other modes find it again.
    instance = pool._take()
    try:
        # Its last call may have been an attempt on the loop's thread, with a short budget.
        instance.store.set_epoch_deadline(pool.engine.deadline_ticks(60))
        func, store = instance.func(case.interface, case.func), instance.store

        def direct() -> None:
            func(store, *case.args)  # FastFunc: the guest's post-return runs inside the call

        return _time_sync(direct)
    finally:
        pool._idle.append(instance)


def _time_sync(call: Callable[[], object]) -> float:
    for _ in range(WARMUP_CALLS):
        call()
    started = time.perf_counter()
    for _ in range(CALLS):
        call()
    return (time.perf_counter() - started) / CALLS * 1e6


async def _time_async(call: Callable[[], Awaitable[object]]) -> float:
    for _ in range(WARMUP_CALLS):
        await call()
    started = time.perf_counter()
    for _ in range(CALLS):
        await call()
    return (time.perf_counter() - started) / CALLS * 1e6


def _table(cases: list[Case], timings: Timings, rounds: int) -> Table:
    table = Table(
        f"Sequential calls, µs per call, median of {rounds} rounds x {CALLS} calls",
        ["call", *MODES, "pool overhead", "runtime.call - pool._call", "runtime.call / direct"],
    )
    for case in cases:
        direct, pooled, hopped = (median(timings[case.label, m]) for m in MODES)
        table.add(
            case.label, fmt(direct, 2), fmt(pooled, 2), fmt(hopped, 2),
            fmt(minus(pooled, direct), 2), fmt(minus(hopped, pooled), 2), ratio(hopped, direct),
        )  # fmt: skip
    table.notes.append(
        f"Reference: a bare no-op round trip through the pool's worker threads takes "
        f"{fmt(median(timings[BARE_HOP]), 2)} µs here (median)."
    )
    table.notes.append(
        "log-once's host call goes through wasi:logging at level info; the bench leaves Python "
        "logging unconfigured (WARNING), so the record is dropped early, as on a quiet host."
    )
    return table
