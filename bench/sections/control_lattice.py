"""The control section's lattice: one host daemon, and the control calls the section times.

nats-server and one ``lattice host`` process (``HOST_ID``), as in ``bench.lattice_rig``; the
bench process is the client: a control connection for scale, links and pings, and an HTTP
session to the host's http-server. Each component the section starts gets its own HTTP
link (``/<component id>``); stopping it also drops that link and purges its delete marker,
so rounds do not grow the links bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from bench.echo import EMPTY_MAP
from bench.lattice_rig import connected, nats_server, start_host, wait_joined
from bench.procs import BenchProcessError, stop

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from lattice.client import LatticeClient
    from lattice.messages import Link

HOST_ID = "bench-host"
POLL_S = 0.001


@dataclass
class Lattice:
    """What the measurements talk to: the host's HTTP port and a control client."""

    nats_url: str
    nc: Client
    client: LatticeClient
    http: aiohttp.ClientSession
    http_port: int

    def url(self, component_id: str) -> str:
        return f"http://127.0.0.1:{self.http_port}/{component_id}"


@contextlib.asynccontextmanager
async def running_lattice(tmp: Path) -> AsyncIterator[Lattice]:
    """nats-server and the host, started; the host answers pings once this yields."""
    from lattice.client import LatticeClient

    with nats_server(tmp, "control") as nats:
        host = start_host(nats.url, tmp / "host", HOST_ID, "control-host")
        try:
            async with connected(nats.url, "bench-control") as nc, aiohttp.ClientSession() as http:
                lattice = Lattice(nats.url, nc, LatticeClient(nc), http, host.port)

                # The host subscribes to pings only once fully started.
                async def answers() -> bool:
                    return await ping_first_reply_ms(lattice, timeout_s=0.2) is not None

                await wait_joined([host], answers)
                yield lattice
        finally:
            stop(host, timeout_s=15.0)


async def stop_component(lattice: Lattice, component_id: str, wasm: Path) -> None:
    """Scale to 0 and drop the link, so neither the host nor the lattice accumulates."""
    from lattice.messages import ScaleComponent

    request = ScaleComponent(component_id=component_id, source=str(wasm), count=0)
    await lattice.client.scale(HOST_ID, request)
    await delete_link(lattice, http_link(component_id))


async def delete_link(lattice: Lattice, link: Link) -> None:
    """Delete the link, then purge its delete marker.

    The lattice never purges markers and every start scans them (the section's link
    reads measure that on purpose); purging its own keeps the bench's rounds from growing
    the bucket.
    """
    from lattice.kv import encode_key
    from lattice.messages import LinkRef

    ref = LinkRef(source_id=link.source_id, namespace=link.namespace, package=link.package,
                  name=link.name)  # fmt: skip
    await lattice.client.delete_link(ref)
    bucket = lattice.client.subjects.links_bucket
    subject = f"$KV.{bucket}.{encode_key(link.key)}"
    await lattice.nc.jetstream().purge_stream(f"KV_{bucket}", subject=subject)


def http_link(component_id: str) -> Link:
    from lattice.messages import Link

    return Link(source_id="http-server", target=component_id, namespace="wasmlattice",
                package="http", name=component_id, config={"path": f"/{component_id}"})  # fmt: skip


async def first_ok(lattice: Lattice, component_id: str, timeout_s: float = 10.0) -> int:
    """GET until a 200 (polling every ``POLL_S``); returns how many GETs it took."""
    deadline = time.monotonic() + timeout_s
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        if await get_status(lattice, component_id) == 200:
            return polls
        await asyncio.sleep(POLL_S)
    raise BenchProcessError(f"{component_id} did not answer 200 within {timeout_s} s")


async def get_status(lattice: Lattice, component_id: str) -> int:
    async with lattice.http.get(lattice.url(component_id)) as response:
        await response.read()
        return response.status


async def link_keys(lattice: Lattice) -> float:
    """Keys the links bucket's stream lists; a deleted link stays listed (its marker)."""
    stream = f"KV_{lattice.client.subjects.links_bucket}"
    info = await lattice.nc.jetstream().stream_info(stream, subjects_filter=">")
    return float(len(info.state.subjects or {}))


async def ping_first_reply_ms(lattice: Lattice, timeout_s: float = 2.0) -> float | None:
    """Time from publishing a ping to its first reply: what ``hosts()`` could return after.

    ``LatticeClient.hosts()`` waits a fixed window instead, since it cannot know how many
    hosts will answer; this is the latency under that window.
    """
    nc = lattice.nc
    inbox = nc.new_inbox()
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def on_reply(msg: Msg) -> None:
        # An empty message is a "no responders" status, not a host.
        if msg.data and not first.done():
            first.set_result(time.perf_counter())

    # Subscribed before the clock starts, as hosts() is: the round trip is what is timed.
    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        started = time.perf_counter()
        await nc.publish(lattice.client.subjects.ping, EMPTY_MAP, reply=inbox)
        replied = await asyncio.wait_for(first, timeout_s)
    except TimeoutError:
        return None
    finally:
        await sub.unsubscribe()
    return (replied - started) * 1000
