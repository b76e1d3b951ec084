"""The demo app that ``lattice up`` runs: hello at ``/`` and a counter at ``/counter``.

It goes through the same path as any user's app: links in JetStream (the
http-server routes, the counter's keyvalue bucket) and scale requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from catalog.kinds import KEYVALUE
from host.errors import FetchError
from lattice.connection import NatsOptions, connect
from lattice.messages import Link, ScaleComponent, http_route
from lattice.state import LatticeState

if TYPE_CHECKING:
    from host.daemon import HostDaemon

DEMO_BUCKET = "demo-counter"


def demo_links() -> list[Link]:
    return [
        http_route("hello", "/"),
        http_route("counter", "/counter"),
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
