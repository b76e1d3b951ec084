"""The demo app that ``lattice up`` runs: hello at ``/`` and a counter at ``/counter``."""

from __future__ import annotations

from pathlib import Path

from host.errors import FetchError
from host.runtime import ComponentSpec, LinkSpec
from providers.http_server import Route

DEMO_BUCKET = "demo-counter"


def demo_components(components_dir: Path) -> list[tuple[ComponentSpec, list[Route]]]:
    hello = components_dir / "hello.wasm"
    counter = components_dir / "counter.wasm"
    for path in (hello, counter):
        if not path.exists():
            raise FetchError(
                f"demo component {path} is missing: build it with `make components`"
            )
    return [
        (ComponentSpec("hello", str(hello)), [Route("hello", "/")]),
        (
            ComponentSpec(
                "counter",
                str(counter),
                links=(LinkSpec("keyvalue", {"bucket": DEMO_BUCKET}),),
            ),
            [Route("counter", "/counter")],
        ),
    ]
