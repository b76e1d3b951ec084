"""Bounds on NATS connects and closes that nats-py might not keep (``lattice.connection``)."""

from __future__ import annotations

import asyncio
import time

import pytest

from lattice.connection import NatsOptions, _abandoned, close_connection, connect, within
from lattice.natsd import NatsServer


async def test_an_attempt_that_swallows_cancellation_still_times_out_and_ends() -> None:
    """As nats-py's connect loop can: one cancellation is caught, the retrying goes on."""
    swallowed = 0
    ended = asyncio.Event()

    async def stubborn() -> str:
        nonlocal swallowed
        try:
            while True:
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    swallowed += 1
                    if swallowed > 1:
                        raise
        finally:
            ended.set()

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await within(stubborn(), 0.2)
    assert time.monotonic() - started < 1.0  # wait_for would wait here for good
    await asyncio.wait_for(ended.wait(), 5)  # cancelled again until it ended
    assert swallowed == 2
    await asyncio.sleep(0)
    assert not _abandoned


async def test_a_result_in_time_is_returned() -> None:
    async def quick() -> int:
        await asyncio.sleep(0.01)
        return 7

    assert await within(quick(), 5) == 7


async def test_an_error_in_time_is_raised_as_is() -> None:
    async def refused() -> None:
        raise OSError("connection refused")

    with pytest.raises(OSError, match="refused"):
        await within(refused(), 5)


async def test_closing_a_connection_whose_server_is_gone_ends_in_time(
    nats_server: NatsServer,
) -> None:
    """A reconnecting client's drain waits for a server that is not coming back."""
    nc = await connect(NatsOptions(nats_server.url))
    nats_server.stop()
    started = time.monotonic()
    await close_connection(nc, timeout_s=0.5)
    assert time.monotonic() - started < 3.0
    assert nc.is_closed
