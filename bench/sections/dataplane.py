"""The data plane over several processes: one host's HTTP from 1 process vs one per core.

A nats-server and two real hosts (``lattice host``), one with
``--data-plane-processes 1`` and one with one process per core, both running the
demo's own-contract ``hello`` (componentize-py, 4 warm instances per process), plus
a plain aiohttp handler as the reference. wrk (``-t1 -c16``, the issue's load)
drives one target at a time, rounds rotating the order; server CPU is summed over
every process of a host (the daemon and its data-plane members) from /proc.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import HELLO_BODY, Config, prepare_components
from bench.lattice_rig import connected, nats_server, start_host, wait_joined
from bench.loadgen import cpu_seconds
from bench.procs import BenchProcessError, Server, spawn_server, stop, wait_ready
from bench.stats import median
from bench.table import Table, fmt, ratio

TITLE = "HTTP hello from one host process vs one per core (SO_REUSEPORT), and plain aiohttp"

CONNECTIONS = 16
WARMUP_S = 1.0
DURATION_S = 4.0
ROUNDS = 3
INSTANCES = 4


@dataclass(frozen=True)
class Round:
    requests: int
    errors: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_s: float | None

    @property
    def cpu_us(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6


@dataclass
class Target:
    label: str
    server: Server
    processes: int
    rounds: list[Round] = field(default_factory=list)

    def median(self, pick: str) -> float | None:
        return median([v for r in self.rounds if (v := getattr(r, pick)) is not None])


def run(config: Config) -> list[Table]:
    if shutil.which("wrk") is None:
        raise BenchProcessError("the dataplane section needs wrk (apt-get install wrk)")
    wasm = prepare_components(["hello"])["hello"]
    per_core = max(2, os.cpu_count() or 1)
    with ExitStack() as cleanup:
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-dp-")))
        nats = cleanup.enter_context(nats_server(tmp, "dataplane"))
        targets = []
        for count in (1, per_core):
            host_id = f"dp-{count}"
            server = start_host(nats.url, tmp / host_id, host_id, f"dataplane-{host_id}",
                                "--data-plane-processes", str(count))  # fmt: skip
            cleanup.callback(stop, server)
            label = f"hello, {count} process" + ("es" if count > 1 else "")
            targets.append(Target(label, server, count))
        plain = spawn_server("dataplane-plain", "bench.serve", "plain")
        cleanup.callback(stop, plain)
        wait_ready(plain)
        asyncio.run(_deploy(nats.url, [t.server for t in targets], wasm))
        targets.append(Target("plain aiohttp", plain, 1))
        for target in targets:
            _drive(target.server.url, WARMUP_S)
        for round_no in range(config.rounds_or(ROUNDS)):
            shift = round_no % len(targets)
            for target in targets[shift:] + targets[:shift]:
                target.rounds.append(_measure(target, config.duration_or(DURATION_S)))
    return [_table(targets, config)]


async def _deploy(nats_url: str, hosts: list[Server], wasm: Path) -> None:
    """Route / to hello and run it on every host; wait until each answers through HTTP."""
    from lattice.client import LatticeClient
    from lattice.messages import ScaleComponent, http_route

    async with connected(nats_url, "bench-dataplane") as nc:
        client = LatticeClient(nc)

        async def joined() -> bool:
            return {h.host_id for h in await client.hosts()} >= {s.name for s in hosts}

        await wait_joined(hosts, joined)
        await client.put_link(http_route("hello", "/"))
        for server in hosts:
            request = ScaleComponent(
                component_id="hello", source=str(wasm), count=INSTANCES, max_concurrency=INSTANCES
            )
            await client.scale(server.name, request, timeout_s=120)
    for server in hosts:
        _wait_answers(server)


def _wait_answers(server: Server, tries: int = 100) -> None:
    import urllib.request

    for _ in range(tries):
        try:
            with urllib.request.urlopen(server.url, timeout=5) as response:
                if response.read() == HELLO_BODY:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchProcessError(f"{server.name} does not answer hello at {server.url}")


def _measure(target: Target, duration_s: float) -> Round:
    pids = _process_tree(target.server.pid)
    before = [cpu_seconds(pid) for pid in pids]
    out = _drive(target.server.url, duration_s)
    after = [cpu_seconds(pid) for pid in pids]
    used = [a - b for a, b in zip(after, before, strict=True) if a is not None and b is not None]
    requests = int(_find(r"(\d+) requests in", out) or 0)
    errors = int(_find(r"Non-2xx or 3xx responses: (\d+)", out) or 0)
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Round(
        requests=requests,
        errors=errors,
        rps=float(_find(r"Requests/sec:\s+([\d.]+)", out) or 0.0),
        p50_ms=_latency_ms(out, "50"),
        p99_ms=_latency_ms(out, "99"),
        server_cpu_s=sum(used) if len(used) == len(pids) else None,
    )


def _drive(url: str, duration_s: float) -> str:
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration_s:g}s", "--latency", url]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + 30)
    if proc.returncode != 0:
        raise BenchProcessError(f"wrk failed: {proc.stderr[-500:]}")
    return proc.stdout


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a host's data-plane members)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        children += [int(c) for c in task.read_text().split()]
    return [pid, *children]


def _find(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return found.group(1) if found else None


def _latency_ms(out: str, percent: str) -> float | None:
    found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if not found:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
    return float(found.group(1)) * scale


def _table(targets: list[Target], config: Config) -> Table:
    table = Table(
        f"wrk -t1 -c{CONNECTIONS}, GET hello, median of {config.rounds_or(ROUNDS)} x "
        f"{config.duration_or(DURATION_S):g} s",
        ["target", "processes", "req/s", "req/s per round", "vs 1 process", "vs plain",
         "p50 ms", "p99 ms", "server CPU µs/req", "CPU/req vs plain", "errors"],
    )  # fmt: skip
    one, plain = targets[0], targets[-1]
    for t in targets:
        table.add(
            t.label, t.processes, fmt(t.median("rps"), 0),
            "/".join(fmt(r.rps, 0) for r in t.rounds),
            ratio(t.median("rps"), one.median("rps")), ratio(t.median("rps"), plain.median("rps")),
            fmt(t.median("p50_ms"), 2), fmt(t.median("p99_ms"), 2), fmt(t.median("cpu_us"), 0),
            ratio(t.median("cpu_us"), plain.median("cpu_us")), sum(r.errors for r in t.rounds),
        )  # fmt: skip
    table.notes.append(
        "server CPU sums every process of the host (daemon + data-plane members) over wrk's run; "
        f"each process runs {INSTANCES} warm hello instances."
    )
    return table
