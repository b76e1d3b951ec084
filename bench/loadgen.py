"""The load generator, run as its own process against one server at a time.

    python -m bench.loadgen URL --connections 16 --warmup 1 --duration 3 [--server-pid PID]

N keep-alive connections each send GETs back to back (closed loop) for the
warm-up, then for the measured window; only requests started inside the window
count. Prints one JSON object: requests, req/s, latency percentiles, errors, and
the CPU time this process, the server and the whole machine spent in the window
(the machine's tells whether other work shared the cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field

import aiohttp

from bench.context import HELLO_BODY
from bench.stats import minus, percentile
from lattice import eventloop

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Window:
    start: float
    end: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def check(session: aiohttp.ClientSession, url: str) -> None:
    """Refuse to measure a server that answers something else than the hello body."""
    async with session.get(url) as response:
        body = await response.read()
        if response.status != 200 or body != HELLO_BODY:
            raise SystemExit(f"{url} answered {response.status} {body[:80]!r}")


async def worker(session: aiohttp.ClientSession, url: str, window: Window) -> None:
    while (started := time.perf_counter()) < window.end:
        ok = False
        try:
            async with session.get(url) as response:
                await response.read()
                ok = response.status == 200
        except aiohttp.ClientError:
            pass
        if started >= window.start:
            if ok:
                window.latencies.append(time.perf_counter() - started)
            else:
                window.errors += 1


def machine_busy_seconds() -> float | None:
    """CPU time all cores spent busy (not idle or waiting for I/O), summed over cores."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle, iowait = ticks[3], ticks[4]
    # Fields past the 8th (guest time) are already counted in user and nice.
    return (sum(ticks[:8]) - idle - iowait) / CLOCK_TICKS


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (this one when pid is None)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        with open(f"/proc/{pid}/stat") as f:
            # Fields after the ")" of the command name; utime and stime are 14 and 15.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None  # not Linux, or the server is gone: the column shows "-"


async def measure(args: argparse.Namespace) -> dict[str, float | int | None]:
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await check(session, args.url)
        now = time.perf_counter()
        window = Window(now + args.warmup, now + args.warmup + args.duration)
        workers = [
            asyncio.create_task(worker(session, args.url, window)) for _ in range(args.connections)
        ]
        await asyncio.sleep(window.start - time.perf_counter())
        before = _sample(args.server_pid)
        await asyncio.sleep(window.end - time.perf_counter())
        after = _sample(args.server_pid)
        await asyncio.gather(*workers)
    return summarize(window, args.duration, before, after)


Sample = tuple[float | None, float | None, float | None]


def _sample(server_pid: int | None) -> Sample:
    """CPU seconds so far of this process, the server and the whole machine."""
    return cpu_seconds(None), cpu_seconds(server_pid), machine_busy_seconds()


def summarize(
    window: Window, duration: float, before: Sample, after: Sample
) -> dict[str, float | int | None]:
    ordered = sorted(window.latencies)
    return {
        "requests": len(ordered),
        "errors": window.errors,
        "rps": len(ordered) / duration,
        "p50_ms": _ms(percentile(ordered, 50)),
        "p99_ms": _ms(percentile(ordered, 99)),
        "client_cpu_s": minus(after[0], before[0]),
        "server_cpu_s": minus(after[1], before[1]),
        "machine_cpu_s": minus(after[2], before[2]),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--server-pid", type=int)
    print(json.dumps(eventloop.run(measure(parser.parse_args()))))


if __name__ == "__main__":
    main()
