"""A data-plane member: one more process serving the host's HTTP port.

    python -I -c BOOTSTRAP ROOT --fd N --parent-pid PID --index I
        --connections-fd C --states-fd S                        (see group.member_command)

The daemon starts it with one end of a socket pair as descriptor N. The first
message gives its ``PlaneSettings``: it connects to NATS with the host's
credentials, builds its runtime and HTTP front exactly as the daemon does
(``host.dataplane.settings``), answers with its pid, then does what it is
asked, one request at a time:

- ``start``: start or update a component (the daemon's own ``ComponentSpec``);
- ``stop``: stop one;
- ``routes``: the host's whole route table, swapped in at once;
- ``serve``: start taking the connections the daemon hands over (the daemon
  alone accepts on the host's port). The daemon asks only once the member runs
  every component and route, so a restarted member never answers 404 for a
  component that runs;
- ``stats``: calls, failures and calls in flight per component (the
  inventory counts the host's processes together); it is the health check too;
- ``shutdown``: take no more connections, let in-flight calls finish, exit.

It exits as well when its channel closes or its parent is gone (a daemon that
was SIGKILLed cannot stop it: no orphans), and on SIGTERM.

Descriptors C and S carry its connections (``host.dataplane.connections``):
the daemon hands each over C and keeps a copy, and the member's HTTP server
marks in the table S which connections have a request waiting for its answer.
If the member is killed, those get a ``503`` from the daemon, the ones it had
not started on are served by the daemon, its other connections are closed,
and the daemon starts a new member.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from typing import Any

from host.dataplane.channel import Channel, ChannelClosed, failed, ok
from host.dataplane.connections import ConnectionReporter
from host.dataplane.settings import (
    PlaneSettings,
    bind_remote_providers,
    build_http,
    build_runtime,
    routes_from_wire,
    settings_from_wire,
    spec_from_wire,
)
from host.errors import HostError
from host.runtime.components import HostRuntime
from lattice import eventloop, tracing
from lattice.connection import Connection, close_connection, connect
from lattice.process import stop_on_signals, watch_parent
from lattice.redact import SafeFormatter
from providers.http_server import HttpServer, RouteTable

log = logging.getLogger("host.dataplane.member")

DRAIN_TIMEOUT_S = 10.0


class Member:
    """The parts of one member and the operations the daemon drives them with."""

    def __init__(
        self,
        settings: PlaneSettings,
        nc: Connection,
        runtime: HostRuntime,
        http: HttpServer,
        connections: ConnectionReporter,
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.runtime = runtime
        self.http = http
        self.connections = connections
        self.stop_requested = asyncio.Event()

    async def handle(self, message: dict[str, Any]) -> Any:
        match message.get("op"):
            case "start":
                spec = spec_from_wire(message["spec"])
                providers = message.get("remote_providers", [])
                bind_remote_providers(self.runtime, self.nc, self.settings.subjects, providers)
                await self.runtime.start(spec)
                return None
            case "stop":
                component_id = message["component_id"]
                if component_id in self.runtime.components:
                    await self.runtime.stop(component_id)
                return None
            case "routes":
                table = RouteTable()
                for route in routes_from_wire(message["routes"]):
                    table.add(route)
                self.http.routes = table
                return None
            case "serve":
                self.connections.serve(self.http.serve_accepted)
                return None
            case "stats":
                return {
                    cid: [r.pool.invocations, r.pool.failures, r.pool.active]
                    for cid, r in self.runtime.components.items()
                }
            case "shutdown":
                self.stop_requested.set()
                return None
            case other:
                raise HostError(f"unknown data-plane operation {other!r}")

    async def serve(self, channel: Channel) -> None:
        """Answer the daemon until it asks to shut down or the channel closes."""
        while not self.stop_requested.is_set():
            try:
                message = await channel.receive()
            except ChannelClosed:
                log.warning("the daemon's channel closed: stopping")
                return
            try:
                reply = ok(await self.handle(message))
            except Exception as exc:  # the daemon gets the reason; the member serves on
                reply = failed(str(exc) or type(exc).__name__)
            await channel.send(reply)

    async def close(self) -> None:
        """Take no more connections, drain in-flight calls, disconnect."""
        await self.http.stop()
        for component_id in list(self.runtime.components):
            await self.runtime.stop(component_id, DRAIN_TIMEOUT_S)
        await self.runtime.close()
        await close_connection(self.nc)


async def run(fd: int, parent_pid: int, connections_fd: int, states_fd: int) -> None:
    channel = await Channel.open(socket.socket(fileno=fd))
    reporter = ConnectionReporter.from_fds(connections_fd, states_fd)
    first = await channel.receive()
    settings = settings_from_wire(first["settings"])
    if settings.traces:
        tracing.setup("wasmlattice-host", settings.traces)
    nc = await connect(settings.nats)
    runtime, _ = build_runtime(nc, settings)
    http = build_http(runtime, settings, tracker=reporter)
    member = Member(settings, nc, runtime, http, reporter)
    await channel.send(ok(os.getpid()))
    stop_on_signals(member.stop_requested.set)
    try:
        async with asyncio.TaskGroup() as tasks:
            served = tasks.create_task(member.serve(channel), name="dataplane-channel")
            orphaned = tasks.create_task(watch_parent(parent_pid), name="dataplane-parent")
            stopping = tasks.create_task(member.stop_requested.wait(), name="dataplane-stop")
            await asyncio.wait([served, orphaned, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in (served, orphaned, stopping):
                task.cancel()
    finally:
        await member.close()
        channel.close()
        reporter.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="host.dataplane.member", description=__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--connections-fd", type=int, required=True)
    parser.add_argument("--states-fd", type=int, required=True)
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        SafeFormatter(f"%(asctime)s %(levelname)-7s data-plane {args.index} %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    eventloop.run(run(args.fd, args.parent_pid, args.connections_fd, args.states_fd))


if __name__ == "__main__":
    main()
