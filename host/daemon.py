"""The host daemon: one node's runtime, built-in providers and lattice connection.

``HostDaemon.run()`` serves until ``shutdown()``; shutdown is idempotent and
graceful: stop taking new work (the HTTP listener closes), let in-flight calls
finish, then close the NATS connection.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from host.runtime import ComponentSpec, HostRuntime
from lattice.connection import Connection, NatsOptions, connect
from lattice.kv import BucketCache
from providers.http_server import HttpServer, Route
from providers.keyvalue import MemoryKeyValue, NatsKeyValue

log = logging.getLogger(__name__)


@dataclass
class HostConfig:
    nats: NatsOptions = field(default_factory=NatsOptions)
    state_dir: Path = Path(".state")
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    max_body_bytes: int = 4 * 2**20


class HostDaemon:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.nc: Connection | None = None
        self.runtime: HostRuntime | None = None
        self.http: HttpServer | None = None
        self._stopped = asyncio.Event()
        self._closed = False
        self.serving = False

    async def start(self) -> None:
        self.nc = await connect(self.config.nats)
        backends = {"nats": NatsKeyValue(BucketCache(self.nc)), "memory": MemoryKeyValue()}
        self.runtime = HostRuntime(self.config.state_dir / "compile-cache", backends)
        self.http = HttpServer(
            self.runtime.handle_http,
            self.config.http_host,
            self.config.http_port,
            self.config.max_body_bytes,
        )
        await self.http.start()

    async def start_component(self, spec: ComponentSpec, routes: list[Route]) -> None:
        assert self.runtime is not None and self.http is not None
        await self.runtime.start(spec)
        for route in routes:
            self.http.routes.add(route)

    async def run(self) -> None:
        self.serving = True
        await self._stopped.wait()

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.http is not None:
            await self.http.stop()
        if self.runtime is not None:
            await self.runtime.close()
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()
        self._stopped.set()
