"""One asyncio lock per key, kept only while someone holds or waits for it.

The host handles control requests concurrently, yet requests about one thing (a
component, a provider, the links) must apply in the order they arrived: a scale
to 3 then a stop must not end with 3 replicas. asyncio locks are fair (first
come, first served), so taking the key's lock as the handler's first step keeps
arrival order per key while different keys proceed side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Keys in use (held or awaited)."""
        return len(self._locks)
