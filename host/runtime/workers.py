"""Worker threads that run guest calls off the event loop, with a cheap hand-off.

``loop.run_in_executor`` costs ~110 µs per round trip on a small VM (a concurrent
future, its callbacks, then a wake-up of the loop); a plain queue and one
``call_soon_threadsafe`` per result costs about half. Guest code releases the GIL
while it runs, so these threads run wasm in parallel with the event loop.

Threads start on demand, up to ``count``: one when a job is queued and no
started thread is idle. A pool sized for 64 concurrent calls that sees two at a
time runs two threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

_Job = tuple[asyncio.Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class Workers:
    """Up to ``count`` daemon threads fed by one queue; ``close()`` lets queued jobs finish."""

    def __init__(self, count: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._count = count
        self._name = name
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._waiting = 0  # jobs queued and not yet taken by a thread
        self._idle = 0  # started threads waiting for a job
        self._alive = 0  # started threads that have not exited
        self._on_last_exit: Callable[[], object] | None = None
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads started so far (at most ``count``)."""
        return len(self._threads)

    def submit(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``func(*args)`` on a worker, in a copy of the caller's context."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"workers {self._name} are closed")
            self._waiting += 1
            if self._waiting > self._idle and len(self._threads) < self._count:
                thread = threading.Thread(
                    target=self._run, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                self._alive += 1
                thread.start()
            # Queued under the lock: a close() that follows puts its stop marks after it.
            self._jobs.put((future, contextvars.copy_context(), func, args))
        return future

    def close(self) -> None:
        """Each thread exits after the jobs queued before this call; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            started = len(self._threads)
        for _ in range(started):
            self._jobs.put(None)

    async def wait_closed(self, timeout_s: float) -> bool:
        """After ``close()``: wait for the threads to exit; True if all did in time."""
        loop = asyncio.get_running_loop()
        exited = asyncio.Event()
        with self._lock:
            if self._alive == 0:
                return True
            self._on_last_exit = lambda: loop.call_soon_threadsafe(exited.set)
        deadline = loop.time() + timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(exited.wait(), timeout_s)
        # A thread counts itself out just before it returns: give each the moment it
        # takes to end, so no caller sees a pool's thread still listed as alive.
        threads = list(self._threads)
        await asyncio.to_thread(_join_all, threads, max(0.0, deadline - loop.time()))
        return not any(t.is_alive() for t in threads)

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            with self._lock:
                self._alive -= 1
                last = self._on_last_exit if self._alive == 0 else None
            if last is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed
                    last()

    def _serve(self) -> None:
        with self._lock:
            self._idle += 1
        while True:
            job = self._jobs.get()
            with self._lock:
                self._idle -= 1
                if job is None:
                    return
                self._waiting -= 1
            future, context, func, args = job
            loop = future.get_loop()
            try:
                result = context.run(func, *args)
            except BaseException as exc:  # handed to the awaiting coroutine
                error, value = True, exc
            else:
                error, value = False, result
            # Idle before the result is handed over: the caller's next job must
            # find this thread free, not start another one.
            with self._lock:
                self._idle += 1
            _deliver(loop, future, value, error=error)


def _join_all(threads: list[threading.Thread], timeout_s: float) -> None:
    """Join every thread, all within ``timeout_s`` together."""
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


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
