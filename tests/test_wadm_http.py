"""wadm's HTTP links as written: wasmCloud's address, path and host routing modes.

A wadm manifest whose http-server capability links to components with
``namespace: wasi, package: http, interfaces: [incoming-handler]`` is applied to
a real lattice (nats-server, a `lattice host` process, the controller): a
standard wasi:http component on an ``address`` of its own, and an own-contract
component on a path and a Host of the main listener. The listener of an
address exists while a link needs it; a taken address is an error, not a crash.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from controller.service import Controller
from host.component_request import plan_component
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.messages import Link, ScaleComponent
from lattice.natsd import NatsServer, free_port
from providers.http_listeners import AddressListeners, ListenerUnavailable
from providers.http_server import HttpResponse, HttpServer, Route
from tests.lattice_procs import HostProcess, host_processes, wait_for_hosts
from tests.test_controller import Lattice, status_of, wait_until


def app(hello_py: Path, hello_wat: Path, address: str) -> str:
    return f"""\
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: web
  annotations:
    version: v1
spec:
  components:
    - name: wasi-hello
      type: component
      properties:
        image: {hello_py}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
    - name: own
      type: component
      properties:
        image: {hello_wat}
      traits:
        - type: spreadscaler
          properties:
            instances: 1
    - name: httpserver
      type: capability
      properties:
        image: ghcr.io/wasmcloud/http-server:0.27.0
      traits:
        - type: link
          properties:
            name: by-address
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            target:
              name: wasi-hello
            source:
              config:
                - name: wasi-hello-address
                  properties:
                    address: {address}
        - type: link
          properties:
            name: by-path-and-host
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
            target:
              name: own
            source:
              config:
                - name: own-route
                  properties:
                    path: /own
                    host: shop.example
"""


@pytest.fixture
def host(nats_server: NatsServer, tmp_path: Path, compile_cache: Path) -> Iterator[HostProcess]:
    with host_processes(
        nats_server.url, tmp_path, {"h1": {}}, heartbeat_s=0.3, compile_cache=compile_cache
    ) as procs:
        yield procs["h1"]


@pytest.fixture
async def lattice(
    nats_server: NatsServer, host: HostProcess, tmp_path: Path
) -> AsyncIterator[Lattice]:
    nc = await connect(NatsOptions(nats_server.url))
    client = LatticeClient(nc)
    await wait_for_hosts(client, {host.host_id})
    controller = Controller(nc, host_timeout_s=1.0, tick_s=0.2, lease_ttl_s=1.5)
    await controller.start()
    task = asyncio.create_task(controller.run(), name="controller")
    try:
        yield Lattice(client, controller, tmp_path)
    finally:
        controller.request_stop()
        await task
        await nc.close()


async def fetch(url: str, host: str | None = None) -> tuple[int, bytes] | None:
    headers = {"Host": host} if host else {}
    try:
        async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
            return response.status, await response.read()
    except aiohttp.ClientError:
        return None


async def test_address_path_and_host_links_from_a_manifest(
    lattice: Lattice, host: HostProcess, components: dict[str, Path]
) -> None:
    port = free_port()
    await lattice.apply(app(components["wasi-hello"], components["hello-wat"], f"127.0.0.1:{port}"))
    own = f"http://127.0.0.1:{host.http_port}/own"

    async def served() -> bool:
        return await fetch(f"http://127.0.0.1:{port}/any/path") == (
            200,
            b"Hello from wasi:http!\n",
        ) and await fetch(own, "shop.example") == (200, b"Hello from wasmlattice!\n")

    await wait_until(served, timeout_s=60, what="both routing modes served")
    # Path and Host on the main listener: another Host does not reach it...
    assert (await fetch(own, "other.example") or (0, b""))[0] == 404
    # ...and the address route is not on the main listener.
    assert (await fetch(f"http://127.0.0.1:{host.http_port}/any/path") or (0, b""))[0] == 404

    await lattice.specs.undeploy("web")

    async def listener_gone() -> bool:
        return await fetch(f"http://127.0.0.1:{port}/") is None

    await wait_until(listener_gone, what="the address listener stopped with its link")


async def test_a_taken_address_is_a_clear_error(
    lattice: Lattice, host: HostProcess, components: dict[str, Path]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        await lattice.apply(
            app(components["wasi-hello"], components["hello-wat"], f"127.0.0.1:{port}")
        )

        async def reported() -> bool:
            record = await lattice.specs.get_status("web")
            return record is not None and "address already in use" in str(record)

        await wait_until(reported, timeout_s=60, what="the taken address in the app's status")
        # The host lives on and serves the other route.
        own = f"http://127.0.0.1:{host.http_port}/own"
        assert await fetch(own, "shop.example") == (200, b"Hello from wasmlattice!\n")
        assert await status_of(lattice, "web") != "none"


def test_plan_puts_address_routes_on_listeners_of_their_own() -> None:
    request = ScaleComponent(component_id="c", source="/x.wasm", count=1)

    def link(**config: str) -> Link:
        return Link(
            source_id="http-server",
            target="c",
            namespace="wasi",
            package="http",
            interfaces=["incoming-handler"],
            config=config,
        )

    plan = plan_component(
        request,
        [],
        [link(path="/a"), link(address="0.0.0.0:8081"), link(address="[::1]:9000", host="h")],
        {},
        reserved=lambda _bucket: False,
    )
    assert plan.routes == (Route("c", "/a"),)
    assert plan.address_routes == (
        ("0.0.0.0:8081", Route("c", "/")),
        ("[::1]:9000", Route("c", "/", "h")),
    )


async def test_listeners_start_stop_and_refuse_a_taken_address() -> None:
    async def invoke(_component: str, _request: object) -> HttpResponse:
        return HttpResponse(200, body=b"ok")

    listeners = AddressListeners(lambda host, port: HttpServer(invoke, host, port))  # type: ignore[arg-type]
    free = free_port()
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            with pytest.raises(ListenerUnavailable, match="address already in use"):
                await listeners.update(
                    "c", [(f"127.0.0.1:{busy}", Route("c")), (f"127.0.0.1:{free}", Route("c"))]
                )
        # The free address of the same update is served regardless.
        assert await fetch(f"http://127.0.0.1:{free}/") == (200, b"ok")
        await listeners.remove_component("c")
        assert await fetch(f"http://127.0.0.1:{free}/") is None
        assert listeners.servers == {}
    finally:
        await listeners.stop()


async def test_a_host_serves_only_so_many_link_addresses() -> None:
    """A spec picks the addresses: each costs a listener, so there is a cap."""
    from lattice.natsd import free_port
    from providers.http_listeners import AddressListeners, ListenerUnavailable
    from providers.http_server import HttpRequest, HttpServer, Route

    async def never(_component: str, _request: HttpRequest) -> HttpResponse:
        raise AssertionError("no request is sent")

    listeners = AddressListeners(lambda host, port: HttpServer(never, host, port), 1)
    first, second = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    try:
        await listeners.update("a", [(first, Route("a", "/"))])
        with pytest.raises(ListenerUnavailable, match="at most 1 link addresses"):
            await listeners.update("b", [(second, Route("b", "/"))])
        assert list(listeners.servers) == [("127.0.0.1", int(first.rsplit(":", 1)[1]))]
        # The same address again takes no new listener.
        await listeners.update("c", [(first, Route("c", "/c"))])
    finally:
        await listeners.stop()
