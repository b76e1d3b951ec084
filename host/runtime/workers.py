"""Worker threads that run guest calls off the event loop, with a cheap hand-off.

``loop.run_in_executor`` costs ~110 µs per round trip on a small VM (a concurrent
future, its callbacks, then a wake-up of the loop); a plain queue and one
``call_soon_threadsafe`` per result costs about half. Guest code releases the GIL
while it runs, so these threads run wasm in parallel with the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

_Job = tuple[asyncio.Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class Workers:
    """A fixed set of daemon threads fed by one queue; ``close()`` lets queued jobs finish."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._count = count
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{n}", daemon=True)
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``func(*args)`` on a worker, in a copy of the caller's context."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, contextvars.copy_context(), func, args))
        return future

    def close(self) -> None:
        """Each thread exits after the jobs queued before this call."""
        for _ in range(self._count):
            self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, context, func, args = job
            loop = future.get_loop()
            try:
                result = context.run(func, *args)
            except BaseException as exc:  # handed to the awaiting coroutine
                _deliver(loop, future, exc, error=True)
            else:
                _deliver(loop, future, result, error=False)


def _deliver(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], value: Any, *, error: bool
) -> None:
    def settle() -> None:
        if future.done():  # the caller was cancelled meanwhile
            return
        if error:
            future.set_exception(value)
        else:
            future.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the loop is closed: nobody is waiting any more
