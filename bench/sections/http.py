"""HTTP hello world: a component through the http-server provider vs plain aiohttp.

Three servers, each its own process: ``hello`` (componentize-py) and ``hello-wat``
(hand-written WAT) behind HostRuntime + HttpServer, and a plain aiohttp handler
with the same body and content type. One load generator process at a time drives
one server; rounds rotate the order so slow phases of a shared machine do not
always hit the same target.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from bench.context import Config, prepare_components
from bench.procs import Server, run_json_child, spawn_server, stop, wait_ready
from bench.stats import median
from bench.table import Table, fmt, ratio

TITLE = "req/s and latency of hello world: component via the http-server provider vs aiohttp"

COMPONENTS = ["hello", "hello-wat"]
# Diagnostic target: hello-wat called on the event loop thread, without the worker hop.
INLINE = "hello-wat-inline"
LABELS = {
    "hello": "hello (componentize-py)",
    "hello-wat": "hello-wat (WAT)",
    INLINE: "diagnostic: hello-wat, no thread hop",
    "plain": "plain aiohttp",
}
CONNECTIONS = 16
WARMUP_S = 1.0
DURATION_S = 3.0
ROUNDS = 3
# The goal for the component path, relative to plain aiohttp's req/s.
TARGET_RATIO = 0.8


@dataclass(frozen=True)
class Round:
    """One load-generator run against one target (see bench.loadgen for the fields)."""

    requests: int
    errors: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    client_cpu_s: float | None
    server_cpu_s: float | None
    machine_cpu_s: float | None
    duration_s: float

    @property
    def server_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6

    def cpu_pct(self, cpu_s: float | None) -> float | None:
        return None if cpu_s is None else cpu_s / self.duration_s * 100

    @property
    def other_cpu_s(self) -> float | None:
        """CPU used by anything but the server and the load generator: a shared machine."""
        machine, server, client = self.machine_cpu_s, self.server_cpu_s, self.client_cpu_s
        if machine is None or server is None or client is None:
            return None
        return max(0.0, machine - server - client)


@dataclass
class Samples:
    """Per-round results of one target."""

    rounds: list[Round] = field(default_factory=list)

    def median(self, value: Callable[[Round], float | None]) -> float | None:
        return median([v for r in self.rounds if (v := value(r)) is not None])


def run(config: Config) -> list[Table]:
    wasm = prepare_components(COMPONENTS)
    with ExitStack() as cleanup:
        servers: list[Server] = []
        for name in COMPONENTS:
            servers.append(spawn_server(name, "bench.serve", "component", name, str(wasm[name])))
            cleanup.callback(stop, servers[-1])
        inline_args = ("component-inline", "hello-wat", str(wasm["hello-wat"]))
        servers.append(spawn_server(INLINE, "bench.serve", *inline_args))
        cleanup.callback(stop, servers[-1])
        servers.append(spawn_server("plain", "bench.serve", "plain"))
        cleanup.callback(stop, servers[-1])
        for server in servers:  # started together, so their start-ups overlap
            wait_ready(server)
        samples = _measure_rounds(servers, config)
    return [_table(servers, samples, config)]


def _measure_rounds(servers: list[Server], config: Config) -> dict[str, Samples]:
    samples = {server.name: Samples() for server in servers}
    for round_no in range(config.rounds_or(ROUNDS)):
        shift = round_no % len(servers)
        for server in servers[shift:] + servers[:shift]:
            samples[server.name].rounds.append(_load(server, config))
    return samples


def _load(server: Server, config: Config) -> Round:
    duration = config.duration_or(DURATION_S)
    args = [server.url, f"--connections={CONNECTIONS}", f"--warmup={WARMUP_S}",
            f"--duration={duration}", f"--server-pid={server.pid}"]  # fmt: skip
    result = json.loads(run_json_child("bench.loadgen", args, duration + WARMUP_S + 60))
    return Round(**result, duration_s=duration)


def _table(servers: list[Server], samples: dict[str, Samples], config: Config) -> Table:
    table = Table(
        f"HTTP GET, {CONNECTIONS} keep-alive connections, median of "
        f"{config.rounds_or(ROUNDS)} x {config.duration_or(DURATION_S):g} s",
        ["target", "req/s", "req/s per round", "vs plain", "p50 ms", "p99 ms",
         "server CPU µs/req", "CPU/req vs plain", "server CPU %", "loadgen CPU %", "other CPU %",
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

    def cpu_us(r: Round) -> float | None:
        return r.server_us_per_request

    table.add(
        label, fmt(s.median(rps), 0), "/".join(fmt(r.rps, 0) for r in s.rounds),
        ratio(s.median(rps), plain.median(rps)),
        fmt(s.median(lambda r: r.p50_ms), 2), fmt(s.median(lambda r: r.p99_ms), 2),
        fmt(s.median(cpu_us), 0), ratio(s.median(cpu_us), plain.median(cpu_us)),
        fmt(s.median(lambda r: r.cpu_pct(r.server_cpu_s)), 0),
        fmt(s.median(lambda r: r.cpu_pct(r.client_cpu_s)), 0),
        fmt(s.median(lambda r: r.cpu_pct(r.other_cpu_s)), 0),
        sum(r.errors for r in s.rounds),
    )  # fmt: skip


def _label(name: str) -> str:
    return LABELS[name]


def _notes(samples: dict[str, Samples]) -> list[str]:
    plain = samples["plain"].median(lambda r: r.rps)
    notes = []
    for name in COMPONENTS:
        rps = samples[name].median(lambda r: r.rps)
        if rps is None or not plain:
            continue
        verdict = "meets" if rps / plain >= TARGET_RATIO else "misses"
        notes.append(f"{_label(name)}: {rps / plain:.2f}x plain req/s, {verdict} the "
                     f"{TARGET_RATIO}x target")  # fmt: skip
    notes.append(
        "CPU % is of one core (100 = one core busy) over the measured window; server CPU counts "
        "all its threads; other = the rest of the machine (other processes sharing the cores)."
    )
    return notes
