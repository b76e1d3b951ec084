"""KeyedLocks: arrival order per key, keys side by side, nothing kept once unused."""

from __future__ import annotations

import asyncio

from host.keyed_locks import KeyedLocks


async def test_one_key_in_arrival_order_other_keys_alongside() -> None:
    locks = KeyedLocks()
    log: list[str] = []
    gate = asyncio.Event()

    async def work(key: str, name: str, wait: bool = False) -> None:
        async with locks.hold(key):
            log.append(f"start {name}")
            if wait:
                await gate.wait()
            log.append(f"end {name}")

    first = asyncio.create_task(work("a", "a1", wait=True))
    second = asyncio.create_task(work("a", "a2"))
    other = asyncio.create_task(work("b", "b1"))
    await other
    assert log == ["start a1", "start b1", "end b1"]
    assert len(locks) == 1  # "a" is held and awaited; "b" is gone
    gate.set()
    await asyncio.gather(first, second)
    assert log[3:] == ["end a1", "start a2", "end a2"]
    assert len(locks) == 0


async def test_a_failure_releases_the_key() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("a"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with locks.hold("a"):
        assert len(locks) == 1
    assert len(locks) == 0
