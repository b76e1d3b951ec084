"""Starting a host daemon: a start that fails says why and leaves nothing running."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from host.daemon import HostConfig, HostDaemon
from host.errors import HostError, HttpUnavailable
from lattice.client import LatticeClient
from lattice.connection import NatsOptions, connect
from lattice.natsd import NatsServer


async def test_a_taken_http_port_is_a_clear_error_and_nothing_keeps_running(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    client = LatticeClient(nc)
    announced: list[str] = []

    async def tail() -> None:
        async for event in client.events():
            announced.append(event.type)

    tailer = asyncio.create_task(tail(), name="tail-events")
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            config = HostConfig(
                nats=NatsOptions(nats_server.url),
                state_dir=tmp_path / "host",
                host_id="host-a",
                http_port=port,
            )
            await asyncio.sleep(0.1)  # the tail subscribes
            before = asyncio.all_tasks()
            with pytest.raises(HttpUnavailable) as raised:
                await HostDaemon.start(config)
            # The NATS connection is closed (its reader, pinger and flusher tasks ended).
            assert [t for t in asyncio.all_tasks() - before if not t.done()] == []
        assert isinstance(raised.value, HostError)
        assert str(raised.value) == (
            f"cannot serve HTTP on 127.0.0.1:{port}: address already in use "
            "(choose another with --http-port)"
        )
        assert isinstance(raised.value.__cause__, OSError)
        # The host never joined: no ping answer, no announcement.
        assert await client.hosts() == []
        await asyncio.sleep(0.2)
        assert "host_started" not in announced
    finally:
        tailer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tailer
        await nc.close()
