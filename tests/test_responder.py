"""Responder: handlers in tasks of their own, bounded concurrency, a close that ends them."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg

from lattice.connection import NatsOptions, connect
from lattice.natsd import NatsServer
from lattice.responder import Responder


async def test_handlers_overlap_up_to_the_concurrency(nats_server: NatsServer) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    running = 0
    peak = 0
    release = asyncio.Event()

    async def handle(msg: Msg) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        await msg.respond(b"done")

    responder = await Responder.start(nc, "work", handle, concurrency=3)
    try:
        calls = [asyncio.create_task(nc.request("work", b"", timeout=5)) for _ in range(5)]
        for _ in range(100):
            if responder.in_flight == 3:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # a fourth handler would have started by now
        assert (responder.in_flight, peak) == (3, 3)
        release.set()
        replies = await asyncio.gather(*calls)
        assert [r.data for r in replies] == [b"done"] * 5
    finally:
        await responder.close()
        await nc.close()


async def test_one_at_a_time_keeps_arrival_order(nats_server: NatsServer) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    seen: list[bytes] = []

    async def handle(msg: Msg) -> None:
        await asyncio.sleep(0.01 if msg.data == b"0" else 0)  # the first is the slowest
        seen.append(msg.data)

    responder = await Responder.start(nc, "ordered", handle)
    try:
        for n in range(10):
            await nc.publish("ordered", str(n).encode())
        await nc.flush()
        for _ in range(100):
            if len(seen) == 10:
                break
            await asyncio.sleep(0.02)
        assert seen == [str(n).encode() for n in range(10)]
    finally:
        await responder.close()
        await nc.close()


async def test_close_waits_for_handlers_then_cancels_the_stuck_ones(
    nats_server: NatsServer,
) -> None:
    nc = await connect(NatsOptions(nats_server.url))
    finished: list[bytes] = []
    cancelled: list[bytes] = []

    async def handle(msg: Msg) -> None:
        try:
            await asyncio.sleep(0.05 if msg.data == b"quick" else 3600)
            finished.append(msg.data)
        except asyncio.CancelledError:
            cancelled.append(msg.data)
            raise

    responder = await Responder.start(nc, "mixed", handle, concurrency=2)
    try:
        await nc.publish("mixed", b"quick")
        await nc.publish("mixed", b"stuck")
        await nc.flush()
        for _ in range(100):
            if responder.in_flight == 2:
                break
            await asyncio.sleep(0.02)
        await responder.close(grace_s=0.5)
        assert (finished, cancelled, responder.in_flight) == ([b"quick"], [b"stuck"], 0)
        # Closed means closed: nothing more is handled.
        await nc.publish("mixed", b"quick")
        await nc.flush()
        await asyncio.sleep(0.1)
        assert finished == [b"quick"]
    finally:
        await nc.close()


async def test_close_still_handles_what_was_already_delivered(nats_server: NatsServer) -> None:
    """Draining, not unsubscribing: queued messages get handled, their callers answered."""
    nc = await connect(NatsOptions(nats_server.url))
    handled: list[bytes] = []
    gate = asyncio.Event()

    async def handle(msg: Msg) -> None:
        await gate.wait()
        handled.append(msg.data)

    responder = await Responder.start(nc, "queued", handle)
    try:
        for n in range(3):
            await nc.publish("queued", str(n).encode())
        await nc.flush()  # the server has sent all three: one is handled, two wait
        for _ in range(100):
            if responder.in_flight == 1:
                break
            await asyncio.sleep(0.02)
        closing = asyncio.create_task(responder.close(grace_s=5))
        await asyncio.sleep(0.1)
        gate.set()
        await closing
        assert handled == [b"0", b"1", b"2"]
    finally:
        await nc.close()


async def test_a_failing_handler_does_not_lose_its_slot(nats_server: NatsServer) -> None:
    nc = await connect(NatsOptions(nats_server.url))

    async def handle(msg: Msg) -> None:
        if msg.data == b"boom":
            raise RuntimeError("boom")
        await msg.respond(b"ok")

    responder = await Responder.start(nc, "fails", handle)
    try:
        for _ in range(3):
            await nc.publish("fails", b"boom")
        reply = await nc.request("fails", b"fine", timeout=5)
        assert reply.data == b"ok"
    finally:
        await responder.close()
        await nc.close()


def test_concurrency_must_be_positive() -> None:
    async def handle(_msg: Msg) -> None:
        return None

    with pytest.raises(ValueError, match="at least 1"):
        Responder(handle, concurrency=0)
