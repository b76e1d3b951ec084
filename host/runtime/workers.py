"""Worker threads that run guest calls off the event loop, with a cheap hand-off.

``loop.run_in_executor`` costs ~110 µs per round trip on a small VM (a concurrent
future, its callbacks, then a wake-up of the loop); a plain queue and a plain
asyncio future cost about half. Guest code releases the GIL while it runs, so
these threads run wasm in parallel with the event loop.

Results go back in batches (``_Completions``): a finished call joins a list, and
only the first call into an empty list wakes the loop (one ``call_soon_threadsafe``,
a write to the loop's self-pipe); the loop then settles every result gathered
meanwhile. Under load that is one wake-up for many calls instead of one each.

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
import weakref
from collections.abc import Callable
from typing import Any

# A finished call: its future, then the exception raised or the value returned.
_Done = tuple[asyncio.Future[Any], bool, Any]


class _Completions:
    """Results of worker calls on their way to one loop, settled in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: this object is the value of a weak mapping keyed by the loop.
        self.loop = weakref.ref(loop)
        self._lock = threading.Lock()
        self._done: list[_Done] = []

    def put(self, future: asyncio.Future[Any], value: Any, *, error: bool) -> None:
        """From a worker thread: hand a result over; wakes the loop only if it is not due."""
        with self._lock:
            self._done.append((future, error, value))
            if len(self._done) > 1:
                return  # a wake-up is already on its way and will take this one too
        loop = self.loop()
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._settle)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting any more

    def _settle(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for future, error, value in done:
            if future.done():  # the caller was cancelled meanwhile
                continue
            if error:
                future.set_exception(value)
            else:
                future.set_result(value)


# One per loop, shared by every pool's workers: their results share the wake-ups.
_completions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Completions] = (
    weakref.WeakKeyDictionary()
)
_completions_lock = threading.Lock()


def _completions_for(loop: asyncio.AbstractEventLoop) -> _Completions:
    found = _completions.get(loop)
    if found is None:
        with _completions_lock:
            found = _completions.setdefault(loop, _Completions(loop))
    return found


_Job = tuple[
    _Completions, asyncio.Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]
]


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
        # The completions of the loop that submitted last: found again without a
        # lookup in the weak mapping (which builds a weakref per call).
        self._completions: _Completions | None = None

    @property
    def threads(self) -> int:
        """Threads started so far (at most ``count``)."""
        return len(self._threads)

    def submit(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``func(*args)`` on a worker, in a copy of the caller's context."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        completions = self._completions
        if completions is None or completions.loop() is not loop:
            completions = self._completions = _completions_for(loop)
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
            self._jobs.put((completions, future, contextvars.copy_context(), func, args))
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
            completions, future, context, func, args = job
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
            completions.put(future, value, error=error)


def _join_all(threads: list[threading.Thread], timeout_s: float) -> None:
    """Join every thread, all within ``timeout_s`` together."""
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
