"""A real host daemon for a test: started, running, and shut down again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from host.daemon import HostConfig, HostDaemon
from lattice.client import LatticeClient
from lattice.connection import connect


@contextlib.asynccontextmanager
async def running_daemon(
    config: HostConfig, compile_cache: Path | None = None
) -> AsyncIterator[HostDaemon]:
    """``HostDaemon.start(config)`` running in a task until the block ends.

    With ``compile_cache`` (the session's, from the fixture) the host shares it, so
    components compile once per test run; ``config.state_dir`` must not exist yet.
    """
    if compile_cache is not None:
        config.state_dir.mkdir(parents=True)
        (config.state_dir / "compile-cache").symlink_to(compile_cache)
    daemon = await HostDaemon.start(config)
    runner = asyncio.create_task(daemon.run(), name=f"host {config.host_id or ''}")
    try:
        yield daemon
    finally:
        await daemon.shutdown()
        await runner


@contextlib.asynccontextmanager
async def daemon_with_client(
    config: HostConfig, compile_cache: Path | None = None
) -> AsyncIterator[tuple[HostDaemon, LatticeClient]]:
    """A ``running_daemon`` and a lattice client on the same NATS server."""
    async with running_daemon(config, compile_cache) as daemon:
        nc = await connect(config.nats)
        try:
            yield daemon, LatticeClient(nc)
        finally:
            await nc.close()
