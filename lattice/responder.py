"""A subscription whose messages are handled in tasks it owns, and stopped for sure.

nats-py runs a subscription's callback inline on one reader task: the next
message waits until the callback returns, and unsubscribing cancels the reader.
Two consequences for a server: calls to one subscription never overlap, and a
handler that absorbs the cancellation (Python 3.11's ``asyncio.wait_for`` can,
when its inner await finishes at the same moment) leaves a reader that the
connection no longer knows about, waiting for messages forever.

Here the reader only hands each message to a new task, at most ``concurrency``
at a time (1 keeps arrival order). ``close()`` drains the subscription rather than
unsubscribing: the server stops sending, and messages it already sent are still
handled (unsubscribing drops them, and their callers wait out their timeouts: a
gap when a provider process is replaced). Then the handlers in flight get a grace
period, and the rest are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

MessageHandler = Callable[[Msg], Awaitable[None]]


class Responder:
    def __init__(self, handle: MessageHandler, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._handle = handle
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None
        self._closed = False
        self.subject = ""

    @classmethod
    async def start(
        cls,
        nc: Client,
        subject: str,
        handle: MessageHandler,
        *,
        queue: str = "",
        concurrency: int = 1,
    ) -> Responder:
        responder = cls(handle, concurrency)
        responder.subject = subject
        responder._sub = await nc.subscribe(subject, queue=queue, cb=responder._on_message)
        return responder

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def _on_message(self, msg: Msg) -> None:
        # Waiting for a slot here is the back-pressure: further messages queue in
        # the subscription (bounded by its pending limits) until a handler ends.
        await self._slots.acquire()
        if self._closed:  # a drain that timed out: what is left is dropped
            self._slots.release()
            return
        task = asyncio.create_task(self._run(msg), name=f"handle {msg.subject}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, msg: Msg) -> None:
        try:
            await self._handle(msg)
        except Exception:  # a handler's own failures are its business; never lose the slot
            log.exception("handler for %s failed", msg.subject)
        finally:
            self._slots.release()

    async def close(self, grace_s: float = 2.0) -> None:
        """Stop taking messages, handle those already delivered, let handlers finish
        for ``grace_s`` each way, then cancel them."""
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await asyncio.wait_for(sub.drain(), grace_s)  # type: ignore[no-untyped-call]
            except Exception as exc:  # timed out, or the connection is going or gone
                # A reader left running by a cut-short drain ends with the connection.
                log.debug("draining %s failed: %s", self.subject, exc or type(exc).__name__)
        self._closed = True
        if not self._tasks:
            return
        tasks = list(self._tasks)
        _, late = await asyncio.wait(tasks, timeout=grace_s)
        for task in late:
            task.cancel()
        if late:
            # A cancelled handler gets a moment to unwind; one that ignores the
            # cancellation is left to finish on its own rather than hang shutdown.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*late, return_exceptions=True), timeout=grace_s
                )
