"""Per-request cost of both HTTP contracts without HTTP: a profiling loop.

    python -m bench.wasi_exchange [N] [--profile]

Starts ``hello`` (own contract) and ``wasi-hello`` (wasi:http, instances reused)
in one HostRuntime and serves N sequential requests to each through the paths the
http-server provider takes (``HostRuntime.handle_http`` and
``HostRuntime.http_exchange``), with an in-memory request and response sink
instead of sockets. Prints µs per request (wall and process CPU) for each, and the
host calls a wasi:http request makes. ``--profile`` runs the wasi:http loop under
cProfile (worker threads included) and prints the top functions.
"""

from __future__ import annotations

import cProfile
import logging
import pstats
import sys
import time
from typing import Any

from bench.context import CACHE_DIR, prepare_components
from lattice import eventloop


class _Body:
    async def read_chunk(self) -> bytes:
        return b""


class _Sink:
    def __init__(self) -> None:
        self.status = 0
        self.chunks: list[bytes] = []

    async def start(self, status: int, headers: list[tuple[str, bytes]]) -> None:
        self.status = status

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def finish(self) -> None:
        pass

    def complete(self, status: int, headers: list[tuple[str, bytes]], body: bytes) -> None:
        self.status = status
        self.chunks.append(body)


async def _measure(n: int, profile: bool) -> None:
    from host.runtime.components import ComponentSpec, HostRuntime
    from host.runtime.pool import Limits
    from providers.http_server import HttpRequest, StreamedRequest

    paths = prepare_components(["hello", "wasi-hello"])
    runtime = HostRuntime(CACHE_DIR)
    limits = Limits(max_concurrency=1)
    for name in ("hello", "wasi-hello"):
        await runtime.start(ComponentSpec(name, str(paths[name]), limits=limits, replicas=1))
    handler = runtime.http_exchange("wasi-hello")
    assert handler is not None

    async def wasi_once() -> None:
        request = StreamedRequest("GET", "http", "localhost", "/", [], _Body())  # type: ignore[arg-type]
        sink = _Sink()
        await handler(request, sink)
        assert sink.status == 200 and sink.chunks, sink.status

    async def own_once() -> None:
        request = HttpRequest(method="GET", path="/", query="", headers=[], body=b"")
        response = await runtime.handle_http("hello", request)
        assert response.status == 200

    try:
        for name, once in (("own contract hello", own_once), ("wasi:http wasi-hello", wasi_once)):
            for _ in range(50):
                await once()
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                await once()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{name:24} {wall / n * 1e6:8.0f} µs/req wall {cpu / n * 1e6:8.0f} µs/req CPU")
        if profile:
            await _profile(runtime, n)
    finally:
        await runtime.close()


async def _profile(runtime: Any, n: int) -> None:
    """The wasi:http guest call on this thread (cProfile sees one thread), as serve does."""
    from host.runtime.wasi.serve import _complete
    from providers.http_server import StreamedRequest

    running = runtime.components["wasi-hello"]
    profiler = cProfile.Profile()
    for _ in range(n):
        request = StreamedRequest("GET", "http", "localhost", "/", [], _Body())  # type: ignore[arg-type]
        exchange = running.wasi.exchange(request, _Sink(), 30.0)
        token = exchange.scope.activate()
        try:
            handles = exchange.handles()
            profiler.enable()
            running.pool._call(running.wasi_http_handler, "handle", handles)
            profiler.disable()
            exchange.release()
            await _complete("wasi-hello", exchange)
        finally:
            exchange.scope.deactivate(token)
            exchange.close()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(35)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.WARNING)
    n = next((int(a) for a in argv if a.isdigit()), 500)
    eventloop.run(_measure(n, "--profile" in argv))


if __name__ == "__main__":
    main(sys.argv[1:])
