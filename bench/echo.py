"""The NATS floor: a plain nats-py responder, in its own process, that returns each payload.

    python -m bench.echo NATS_URL

Sections time a request to it next to the lattice's own request/reply (a control call, a
cross-host invocation) on the same nats-server: what is left above it is the lattice's
cost, not NATS's. It subscribes to ``ECHO_SUBJECT``, prints ``READY 0`` and answers until
SIGTERM (or until the bench that started it is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from bench.procs import READY, BenchProcessError, Server, log_tail, spawn_server, stop, wait_ready
from lattice import eventloop

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

ECHO_SUBJECT = "bench.echo"
# msgpack of an empty map: what an inventory or ping request carries.
EMPTY_MAP = b"\x80"


@contextlib.contextmanager
def echo_responder(name: str, nats_url: str) -> Iterator[Server]:
    """The responder, subscribed once this yields; stopped by pid on the way out."""
    echo = spawn_server(name, "bench.echo", nats_url)
    try:
        wait_ready(echo)
        yield echo
    finally:
        stop(echo)


async def wait_answering(nc: Client, echo: Server, timeout_s: float = 5.0) -> None:
    """The responder subscribed before saying READY; this guards a measurement anyway."""
    import nats.errors

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            await nc.request(ECHO_SUBJECT, EMPTY_MAP, 0.5)
            return
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            await asyncio.sleep(0.05)
    raise BenchProcessError(f"the echo responder does not answer:\n{log_tail(echo.log_path)}")


async def _main(nats_url: str) -> None:
    from bench.serve import _exit_when_orphaned
    from lattice.connection import NatsOptions, connect

    nc = await connect(NatsOptions(nats_url, name="bench-echo"), reconnect=False)

    async def echo(msg: Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(ECHO_SUBJECT, cb=echo)
    await nc.flush()  # subscribed on the server before the bench is told we are ready
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    watchdog = asyncio.create_task(_exit_when_orphaned(stopped))
    print(READY, 0, flush=True)
    try:
        await stopped.wait()
    finally:
        watchdog.cancel()
        await nc.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    eventloop.run(_main(sys.argv[1]))
