"""The distributed section's lattice: two hosts, a front and greeter on each path, the calls.

nats-server, two ``lattice host`` processes (``CALLER``, ``CALLEE``; see
``bench.lattice_rig``) and a plain nats-py echo (``bench.echo``), set up as in
tests/test_distributed.py. ``front`` answers ``GET /?name=Ada`` by calling ``greeter.greet``
through a link: in-process when the greeter runs on the same host, over NATS
(``lattice.invoke``) otherwise. On CALLER, front-local links to greeter-local (also on
CALLER) and front-remote to greeter-remote (only on CALLEE), so both paths serve side by
side. Nothing is measured until each path is seen to reach the greeter it is meant to.

The bench process runs a greeter and two fronts of its own (``HostRuntime``, wired to the
host's ``host.exports.RemoteCalls`` for the remote path) for the in-process calls. ``loop_calls``
and ``thread_calls`` are every call the section times, by key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bench.context import CACHE_DIR
from bench.echo import ECHO_SUBJECT, echo_responder
from bench.lattice_rig import connected, nats_server, start_host, wait_joined
from bench.procs import BenchProcessError, stop

if TYPE_CHECKING:
    from nats.aio.client import Client

    from host.exports import RemoteCalls
    from host.runtime.components import HostRuntime
    from host.wire.codec import WireCodec
    from lattice.client import LatticeClient


CALLER, CALLEE = "bench-a", "bench-b"
IN_PROCESS = "greeter-inproc"  # the bench process's own greeter
REMOTE = "greeter-remote"
# greeter id -> the host that runs it; front id -> (the greeter it links to, its HTTP path)
GREETERS = {"greeter-local": CALLER, REMOTE: CALLEE}
FRONTS = {"front-local": ("greeter-local", "/local"), "front-remote": (REMOTE, "/remote")}
# Fronts in the bench process (no HTTP in the way) -> the greeter each links to.
IN_PROCESS_FRONTS = {"front-inproc": IN_PROCESS, "front-to-remote": REMOTE}
INTERFACE = "wasmlattice:demo/greeter"
# What front passes for GET /?name=Ada, as a wire document (see host.wire.codec).
GREETING = {"name": "Ada", "times": 1, "style": "plain", "tags": [], "signature": None}
QUERY = "?name=Ada"

AsyncCall = Callable[[], Awaitable[object]]


@dataclass
class Rig:
    """Everything the measurements talk to."""

    nc: Client
    client: LatticeClient
    http: aiohttp.ClientSession
    http_url: str  # bench-a's HTTP server
    runtime: HostRuntime  # this process's: IN_PROCESS and IN_PROCESS_FRONTS
    remote: RemoteCalls  # the host's caller end of a cross-host linked call
    codec: WireCodec
    func_type: Any
    export: str  # greeter's exported (versioned) interface name
    args: tuple[Any, ...]  # GREETING as wasmtime values
    payload: bytes  # GREETING encoded
    pids: dict[str, int | None]


@contextlib.asynccontextmanager
async def running_rig(wasm: dict[str, Path], tmp: Path, connections: int) -> AsyncIterator[Rig]:
    """The lattice, deployed and checked; ``connections``: the HTTP session's pool size."""
    from lattice.client import LatticeClient

    # Every process is stopped by pid on the way out, in reverse order, also on errors.
    with contextlib.ExitStack() as procs:
        nats = procs.enter_context(nats_server(tmp, "distributed"))
        hosts = {}
        for host_id in (CALLER, CALLEE):
            hosts[host_id] = start_host(nats.url, tmp / host_id, host_id, f"distributed-{host_id}")
            procs.callback(stop, hosts[host_id], 15.0)
        procs.enter_context(echo_responder("distributed-echo", nats.url))
        pids = {"bench": None, "nats-server": nats.pid}
        pids.update({host_id: server.pid for host_id, server in hosts.items()})
        async with connected(nats.url, "bench-distributed") as nc:
            client = LatticeClient(nc)

            async def joined() -> bool:
                return set(hosts) <= {host.host_id for host in await client.hosts(wait_s=0.2)}

            await wait_joined(list(hosts.values()), joined)
            await _deploy(client, wasm)
            async with contextlib.AsyncExitStack() as stack:
                rig = await _rig(stack, nc, nats.url, client, hosts[CALLER].port, wasm,
                                 pids, connections)  # fmt: skip
                await _check_routing(rig)
                yield rig


async def _deploy(client: LatticeClient, wasm: dict[str, Path]) -> None:
    """The greeters first, then each front after its links: a start reads its links."""
    from lattice.messages import Link, ScaleComponent

    for greeter, host_id in GREETERS.items():
        # served_by names the host, so _check_routing can see where a call went.
        request = ScaleComponent(component_id=greeter, source=str(wasm["greeter"]),
                                 config={"served_by": host_id})  # fmt: skip
        await client.scale(host_id, request)
    for front, (greeter, path) in FRONTS.items():
        await client.put_link(Link(source_id=front, target=greeter, namespace="wasmlattice",
                                   package="demo", interfaces=["greeter"]))  # fmt: skip
        await client.put_link(Link(source_id="http-server", target=front, namespace="wasmlattice",
                                   package="http", name=front, config={"path": path}))  # fmt: skip
        await client.scale(CALLER, ScaleComponent(component_id=front, source=str(wasm["front"])))


async def _rig(
    stack: contextlib.AsyncExitStack, nc: Client, nats_url: str, client: LatticeClient,
    http_port: int, wasm: dict[str, Path], pids: dict[str, int | None], connections: int,
) -> Rig:  # fmt: skip
    import msgpack

    from host.exports import CodecCache, RemoteCalls
    from host.runtime.components import HostRuntime
    from host.wire.codec import WireCodec
    from lattice.connection import NatsOptions
    from lattice.subjects import Subjects

    # A front whose greeter is not in this process goes through the host's remote path:
    # the host's own code (codec cache, trace headers, each worker thread's own NATS
    # connection) rather than a copy.
    remote = RemoteCalls(nc, Subjects(), CodecCache(), asyncio.get_running_loop(),
                         timeout_s=10.0, direct=NatsOptions(nats_url))  # fmt: skip
    runtime = HostRuntime(CACHE_DIR, remote=remote.invoke, close_remote=remote.close)
    stack.push_async_callback(runtime.close)
    export, func_type = await _start_in_process(runtime, wasm)
    codec = WireCodec.for_func(func_type)
    payload: bytes = msgpack.packb([GREETING])
    connector = aiohttp.TCPConnector(limit=connections)
    http = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
    return Rig(nc, client, http, f"http://127.0.0.1:{http_port}", runtime, remote, codec,
               func_type, export, codec.decode_params(payload), payload, pids)  # fmt: skip


async def _start_in_process(runtime: HostRuntime, wasm: dict[str, Path]) -> tuple[str, Any]:
    """This process's greeter, and two fronts linked to it and to greeter-remote.

    Returns greeter's export name and the function type of ``greet``, as a host reads it
    at start (``host.runtime.export_functions``).
    """
    from host.component_request import DEFAULT_MAX_CONCURRENCY
    from host.runtime.components import ComponentSpec
    from host.runtime.pool import Limits

    # Limits as a daemon sets them for a scale without max_concurrency.
    limits = Limits(max_concurrency=DEFAULT_MAX_CONCURRENCY)
    running = await runtime.start(ComponentSpec(IN_PROCESS, str(wasm["greeter"]), limits=limits,
                                                config={"served_by": "bench"}))  # fmt: skip
    for front, greeter in IN_PROCESS_FRONTS.items():
        await runtime.start(ComponentSpec(front, str(wasm["front"]), limits=limits,
                                          component_links=((INTERFACE, greeter),)))  # fmt: skip
    export = running.export_named(INTERFACE)
    return export, running.export_functions[export]["greet"]


async def _check_routing(rig: Rig) -> None:
    """Refuse to measure unless each path reaches the greeter it is meant to."""
    for path, expected in (("/local", CALLER), ("/remote", CALLEE)):
        async with rig.http.get(rig.http_url + path + QUERY) as response:
            body = await response.json()
            if response.status != 200 or body.get("served_by") != expected:
                raise BenchProcessError(f"GET {path} answered {response.status} {body}")
    reply = await invoke_remote(rig)
    if getattr(reply, "served-by", None) != CALLEE:
        raise BenchProcessError(f"invoke of {REMOTE} answered {reply!r}")
    for front, expected in (("front-inproc", "bench"), ("front-to-remote", CALLEE)):
        response = await call_front(rig, front)
        if response.status != 200 or json.loads(bytes(response.body)).get("served_by") != expected:
            raise BenchProcessError(f"{front} answered {response.status} {response.body!r}")


# -- the calls, by key -------------------------------------------------------------------------


async def invoke_remote(rig: Rig) -> Any:
    """The lattice invocation, as RemoteCalls.invoke does it but on the loop, without the hops."""
    from lattice.invoke import invoke

    payload = rig.codec.encode_params(rig.args)
    data = await invoke(rig.nc, rig.client.subjects, REMOTE, INTERFACE, "greet", payload)
    return rig.codec.decode_result(data)


async def http_get(rig: Rig, path: str) -> None:
    async with rig.http.get(rig.http_url + path + QUERY) as response:
        await response.read()
        if response.status != 200:
            raise BenchProcessError(f"GET {path} answered {response.status}")


async def call_front(rig: Rig, front: str) -> Any:
    from providers import contracts
    from providers.http_server import HttpRequest

    request = HttpRequest("GET", "/", QUERY[1:], [], b"")
    return await rig.runtime.call(front, contracts.HTTP_HANDLER, "handle", request)


def loop_calls(rig: Rig) -> dict[str, AsyncCall]:
    """Calls made on the event loop, by key."""
    from lattice.invoke import FUNC_HEADER

    def request(headers: dict[str, str] | None) -> AsyncCall:
        return lambda: rig.nc.request(ECHO_SUBJECT, rig.payload, timeout=2.0, headers=headers)

    return {
        "inproc-call": lambda: rig.runtime.call(IN_PROCESS, rig.export, "greet", *rig.args),
        "echo": request(None),
        "echo-header": request({FUNC_HEADER: "greet"}),
        "invoke": lambda: invoke_remote(rig),
        "http-local": lambda: http_get(rig, "/local"),
        "http-remote": lambda: http_get(rig, "/remote"),
        "front-inproc": lambda: call_front(rig, "front-inproc"),
        "front-to-remote": lambda: call_front(rig, "front-to-remote"),
    }


def thread_calls(rig: Rig) -> dict[str, Callable[[], object]]:
    """Linked calls, made on a worker thread as a component's import call is."""
    args = (rig.export, "greet", rig.args, rig.func_type)
    return {
        "inproc-linked": lambda: rig.runtime.invoke_sync(IN_PROCESS, *args),
        "remote-linked": lambda: rig.remote.invoke(REMOTE, *args),
    }
