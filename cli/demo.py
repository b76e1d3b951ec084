"""The demo app that ``lattice up`` runs: hello at ``/`` and a counter at ``/counter``.

It goes through the same path as any user's app: links in JetStream (the
http-server routes, the counter's keyvalue bucket) and scale requests.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.kinds import KEYVALUE
from host.errors import FetchError, HostError
from lattice.connection import NatsOptions, connect
from lattice.messages import Link, ScaleComponent, http_route
from lattice.state import LatticeState

if TYPE_CHECKING:
    from host.daemon import HostDaemon

DEMO_BUCKET = "demo-counter"
DEMO_ROUTES = {"/": "hello", "/counter": "counter"}  # path -> component
ROUTES_WAIT_S = 15.0  # the routes follow the links through a KV watch: usually milliseconds


def demo_links() -> list[Link]:
    return [
        *(http_route(component, path) for path, component in DEMO_ROUTES.items()),
        Link(
            source_id="counter",
            target=KEYVALUE,
            interfaces=["store", "atomics"],
            config={"bucket": DEMO_BUCKET},
        ),
    ]


async def deploy_demo(
    daemon: HostDaemon, components_dir: Path, admin: NatsOptions | None = None
) -> None:
    """Put the demo's links (as ``admin`` when given: a host may not write links), then
    scale its components on ``daemon``."""
    sources = {name: components_dir / f"{name}.wasm" for name in ("hello", "counter")}
    for path in sources.values():
        if not path.exists():
            raise FetchError(f"demo component {path} is missing: build it with `make components`")
    nc = await connect(admin, reconnect=False) if admin is not None else daemon.nc
    try:
        state = LatticeState(nc, daemon.subjects, source="client")
        for link in demo_links():
            await state.put_link(link)
    finally:
        if nc is not daemon.nc:
            await nc.close()
    for name, path in sources.items():
        await daemon.apply(ScaleComponent(component_id=name, source=str(path.resolve())))
    await _routes_in_place(daemon)


async def _routes_in_place(daemon: HostDaemon) -> None:
    """Until each demo path routes to its component, so the URLs printed next answer as
    described (``/`` is a prefix route: until ``/counter`` exists, hello answers it)."""
    deadline = time.monotonic() + ROUTES_WAIT_S
    while True:
        missing = [
            path
            for path, component in DEMO_ROUTES.items()
            if (route := daemon.http.routes.lookup("", path)) is None
            or route.component_id != component
        ]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise HostError(f"the demo's routes {missing} are not in place in {ROUTES_WAIT_S:g} s")
        await asyncio.sleep(0.05)
