"""The demo app that ``lattice up`` runs: hello at ``/`` and a counter at ``/counter``.

It goes through the same path as any user's app: links in JetStream (the
http-server routes, the counter's keyvalue bucket) and scale requests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from host.errors import FetchError
from lattice.messages import Link, ScaleComponent, http_route

if TYPE_CHECKING:
    from host.daemon import HostDaemon

DEMO_BUCKET = "demo-counter"


def demo_links() -> list[Link]:
    return [
        http_route("hello", "/"),
        http_route("counter", "/counter"),
        Link(
            source_id="counter",
            target="keyvalue",
            interfaces=["store", "atomics"],
            config={"bucket": DEMO_BUCKET},
        ),
    ]


async def deploy_demo(daemon: HostDaemon, components_dir: Path) -> None:
    assert daemon.state is not None
    sources = {name: components_dir / f"{name}.wasm" for name in ("hello", "counter")}
    for path in sources.values():
        if not path.exists():
            raise FetchError(f"demo component {path} is missing: build it with `make components`")
    for link in demo_links():
        await daemon.state.put_link(link)
    for name, path in sources.items():
        await daemon.apply(ScaleComponent(component_id=name, source=str(path.resolve())))
