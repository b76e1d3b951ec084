"""An HTTP server under test, run as its own process by the http section.

    python -m bench.serve plain
    python -m bench.serve component NAME PATH_TO_WASM
    python -m bench.serve component-inline NAME PATH_TO_WASM   (diagnostic: no thread hop)

Listens on 127.0.0.1 on a free port, prints ``READY <port>``, serves until
SIGTERM (or until the bench that started it is gone).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from bench.context import CACHE_DIR, HELLO_BODY, HELLO_CONTENT_TYPE
from bench.procs import READY
from lattice import eventloop

if TYPE_CHECKING:
    from host.runtime.components import HostRuntime
    from providers.http_server import Invoker

Stop = Callable[[], Awaitable[None]]


async def serve_plain() -> tuple[int, Stop]:
    """The baseline: aiohttp set up exactly like the provider, minus the component."""

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(body=HELLO_BODY, content_type=HELLO_CONTENT_TYPE)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, reuse_address=True)
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return port, runner.cleanup


async def serve_component(name: str, wasm: Path, inline: bool = False) -> tuple[int, Stop]:
    """The component path of a real host: HostRuntime + the http-server provider.

    ``inline`` is a diagnostic, not a way to run a host: calls run on the event loop
    thread (no worker-thread hop), which tells the hop's share of the cost apart from
    wasmtime's.
    """
    from host.component_request import DEFAULT_MAX_CONCURRENCY
    from host.runtime.components import ComponentSpec, HostRuntime
    from host.runtime.pool import Limits
    from providers.http_server import HttpServer, Route

    # As the daemon runs it: DEFAULT_MAX_CONCURRENCY instances and worker threads. All are
    # warmed up front so that instantiation stays out of the measurements.
    limits = Limits(max_concurrency=DEFAULT_MAX_CONCURRENCY)
    spec = ComponentSpec(name, str(wasm), limits=limits, replicas=limits.max_concurrency)
    runtime = HostRuntime(CACHE_DIR)
    await runtime.start(spec)
    invoke = _inline_invoker(runtime) if inline else runtime.handle_http
    # Both contracts, as the daemon's server: a wasi:http component streams.
    server = HttpServer(invoke, "127.0.0.1", 0, exchanges=runtime.http_exchange)
    await server.start()
    server.routes.add(Route(name, "/"))

    async def stop() -> None:
        await server.stop()
        await runtime.close()

    return server.port, stop


def _inline_invoker(runtime: HostRuntime) -> Invoker:
    from providers import contracts
    from providers.http_server import HttpRequest, HttpResponse

    async def invoke(component_id: str, request: HttpRequest) -> HttpResponse:
        # pool._call is the worker threads' body; here it blocks the loop for the call.
        pool = runtime.get(component_id).pool
        result = pool._call(contracts.HTTP_HANDLER, "handle", (request,))
        return HttpResponse(result.status, list(result.headers), bytes(result.body))

    return invoke


async def main(argv: list[str]) -> None:
    if argv[:1] == ["plain"]:
        port, stop = await serve_plain()
    elif argv[:1] == ["component"] and len(argv) == 3:
        port, stop = await serve_component(argv[1], Path(argv[2]))
    elif argv[:1] == ["component-inline"] and len(argv) == 3:
        port, stop = await serve_component(argv[1], Path(argv[2]), inline=True)
    else:
        raise SystemExit(__doc__)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    watchdog = asyncio.create_task(_exit_when_orphaned(stopped))
    print(READY, port, flush=True)
    try:
        await stopped.wait()
    finally:
        watchdog.cancel()
        await stop()


async def _exit_when_orphaned(stopped: asyncio.Event) -> None:
    # A bench killed with SIGKILL cannot stop us; our parent changing is the sign.
    # No event exists for that, hence polling (what ASYNC110 warns about).
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(1.0)
    stopped.set()


if __name__ == "__main__":
    eventloop.run(main(sys.argv[1:]))
