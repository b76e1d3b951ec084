"""How long the event loop was held: the longest gap between 1 ms ticks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class LoopWatch:
    longest = 0.0  # seconds


@contextlib.asynccontextmanager
async def watching_the_loop() -> AsyncIterator[LoopWatch]:
    """A 1 ms ticker on the running loop while the block runs; ``longest`` is its
    longest gap (a call that held the loop's thread shows as one)."""
    loop = asyncio.get_running_loop()
    watch = LoopWatch()

    async def tick() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0.001)
            watch.longest, last = max(watch.longest, loop.time() - last), loop.time()

    ticking = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    try:
        yield watch
    finally:
        ticking.cancel()
