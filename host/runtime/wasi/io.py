"""``wasi:io``: errors, pollables and byte streams, over the event loop.

Streams have a source or a sink on the host side:

- an input stream reads chunks from a ``ChunkSource`` (a request body, an
  outgoing call's response body, nothing for stdin). A read fetches the next
  chunk on the event loop; a non-blocking read that finds nothing buffered
  starts the fetch and returns no bytes, and the stream's pollable is ready
  once the chunk is in.
- an output stream hands chunks to a ``ChunkSink`` (the HTTP response, an
  outgoing request's buffered body, the host log). A sink may finish a write
  later (the response waits for the socket): ``check-write`` grants up to
  ``WRITE_BUDGET`` bytes not yet written, which is the back-pressure. A write
  the sink refuses at once (a body past its length) fails itself; a later
  failure surfaces on the next operation.

Every wait (``block``, ``poll``, the blocking reads and writes) ends at the
call's deadline (``ResourceTable.wait``).
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from host.errors import DeadlineExceeded
from host.runtime.wasi.table import KINDS, HostObject, ResourceTable
from host.runtime.wasi.values import OK, Err, Ok, Variant

__all__ = [
    "Always",
    "ChunkSink",
    "ChunkSource",
    "InputStream",
    "IoError",
    "OutputStream",
    "Pollable",
    "StreamFailed",
    "Timer",
    "Waitable",
    "functions",
    "stream_failed",
    "wait_any",
]

WRITE_BUDGET = 64 * 1024
MAX_READ = 1024 * 1024  # bytes handed to the guest in one read


class IoError(HostObject):
    """``wasi:io/error.error``: a message, and the HTTP error code behind it if any."""

    KIND = KINDS["error"]

    def __init__(self, message: str, http_code: Variant | None = None) -> None:
        self.message = message
        self.http_code = http_code


class Waitable(Protocol):
    """Something a pollable waits for: ready now, or a future / a time to wait on."""

    def ready(self) -> bool: ...

    def wake(self) -> tuple[concurrent.futures.Future[Any] | None, float | None]: ...


class Always:
    """Ready from the start (a pollable on something that never blocks)."""

    def ready(self) -> bool:
        return True

    def wake(self) -> tuple[concurrent.futures.Future[Any] | None, float | None]:
        return None, None


class Timer:
    """Ready at a ``time.monotonic()`` instant."""

    def __init__(self, at: float) -> None:
        self.at = at

    def ready(self) -> bool:
        return time.monotonic() >= self.at

    def wake(self) -> tuple[concurrent.futures.Future[Any] | None, float | None]:
        return None, self.at


class Pollable(HostObject):
    KIND = KINDS["pollable"]

    def __init__(self, waitable: Waitable) -> None:
        self.waitable = waitable


def wait_any(table: ResourceTable, waitables: list[Waitable]) -> list[int]:
    """Block until at least one is ready (or the deadline); the indexes of the ready ones."""
    ready = [i for i, w in enumerate(waitables) if w.ready()]
    if ready:
        return ready  # no wait (a guest on the event loop's thread may go on)
    deadline = table.deadline()
    while True:
        ready = [i for i, w in enumerate(waitables) if w.ready()]
        if ready:
            return ready
        futures, due = [], deadline
        for w in waitables:
            future, at = w.wake()
            if future is not None:
                futures.append(future)
            if at is not None:
                due = min(due, at)
        now = time.monotonic()
        if now >= deadline:
            raise DeadlineExceeded("the component polled past its deadline")
        if futures:
            concurrent.futures.wait(futures, due - now, concurrent.futures.FIRST_COMPLETED)
        else:
            time.sleep(max(0.0, due - now))


class ChunkSource(Protocol):
    """Where an input stream's bytes come from."""

    def fetch(self) -> concurrent.futures.Future[bytes]:
        """The next chunk (b"" at the end); the future fails with an IoError's message."""
        ...


class ChunkSink(Protocol):
    """Where an output stream's bytes go."""

    def write(self, chunk: bytes) -> concurrent.futures.Future[None] | None:
        """Take one chunk; a future when the write completes later, None when done."""
        ...


class StreamFailed(Exception):
    """A source or sink failed; ``error`` is what the guest gets."""

    def __init__(self, error: IoError) -> None:
        super().__init__(error.message)
        self.error = error


class InputStream(HostObject):
    KIND = KINDS["input-stream"]

    def __init__(self, source: ChunkSource | None, on_release: Callable[[], None] | None = None):
        self._source = source
        self._buffer = b""
        self._pending: concurrent.futures.Future[bytes] | None = None
        self._ended = source is None
        self._error: IoError | None = None
        self._lock = threading.Lock()
        self._on_release = on_release

    def release(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        if self._on_release is not None:
            self._on_release()

    def _collect(self) -> None:
        """Move a finished fetch into the buffer (or the end / error state)."""
        pending = self._pending
        if pending is None or not pending.done():
            return
        self._pending = None
        try:
            chunk = pending.result()
        except StreamFailed as exc:
            self._error = exc.error
            return
        except BaseException as exc:
            self._error = IoError(f"reading failed: {exc}")
            return
        if chunk:
            self._buffer += chunk
        else:
            self._ended = True

    def _start(self) -> None:
        if self._pending is None and not self._ended and self._error is None:
            assert self._source is not None
            self._pending = self._source.fetch()

    def ready(self) -> bool:
        with self._lock:
            self._collect()
            if self._buffer or self._ended or self._error is not None:
                return True
            self._start()
            return False

    def wake(self) -> tuple[concurrent.futures.Future[Any] | None, float | None]:
        return self._pending, None

    def read(self, table: ResourceTable, length: int, blocking: bool) -> Any:
        while True:
            with self._lock:
                self._collect()
                if self._buffer:
                    n = min(length, MAX_READ)
                    chunk, self._buffer = self._buffer[:n], self._buffer[n:]
                    return Ok(chunk)
                if self._error is not None:
                    return Err(stream_failed(table, self._error))
                if self._ended:
                    return Err(Variant("closed"))
                if length == 0:
                    return Ok(b"")
                self._start()
                pending = self._pending
            if not blocking:
                return Ok(b"")
            assert pending is not None
            concurrent.futures.wait([pending], max(0.0, table.deadline() - time.monotonic()))
            if not pending.done():
                raise DeadlineExceeded("the component waited on a stream past its deadline")

    def skip(self, table: ResourceTable, length: int, blocking: bool) -> Any:
        result = self.read(table, length, blocking)
        return Ok(len(result.value)) if isinstance(result, Ok) else result


class OutputStream(HostObject):
    KIND = KINDS["output-stream"]

    def __init__(self, sink: ChunkSink, on_release: Callable[[], None] | None = None) -> None:
        self._sink = sink
        self._in_flight: list[tuple[concurrent.futures.Future[None], int]] = []
        self._error: IoError | None = None
        self._closed = False
        self._lock = threading.Lock()
        self._on_release = on_release

    def release(self) -> None:
        self._closed = True
        if self._on_release is not None:
            self._on_release()

    def _settle(self) -> int:
        """Forget finished writes (noting a failure); the bytes still in flight."""
        if not self._in_flight:  # the usual case: sinks mostly finish writes at once
            return 0
        pending = []
        for future, size in self._in_flight:
            if not future.done():
                pending.append((future, size))
                continue
            exc = future.exception()
            if exc is not None and self._error is None:
                self._error = exc.error if isinstance(exc, StreamFailed) else IoError(str(exc))
        self._in_flight = pending
        return sum(size for _, size in pending)

    def ready(self) -> bool:
        with self._lock:
            return self._settle() < WRITE_BUDGET or self._error is not None

    def wake(self) -> tuple[concurrent.futures.Future[Any] | None, float | None]:
        with self._lock:
            return (self._in_flight[0][0] if self._in_flight else None), None

    def check_write(self, table: ResourceTable) -> Any:
        with self._lock:
            busy = self._settle()
            if self._error is not None:
                return Err(stream_failed(table, self._error))
            if self._closed:
                return Err(Variant("closed"))
            return Ok(max(0, WRITE_BUDGET - busy))

    def write(self, table: ResourceTable, data: bytes) -> Any:
        with self._lock:
            self._settle()
            if self._error is not None:
                return Err(stream_failed(table, self._error))
            if self._closed:
                return Err(Variant("closed"))
            if data:
                future = self._sink.write(bytes(data))
                if future is not None:
                    self._in_flight.append((future, len(data)))
                    if future.done():  # refused at once (a body past its length): this write fails
                        self._settle()
                        if self._error is not None:
                            return Err(stream_failed(table, self._error))
        return OK

    def flush(self, table: ResourceTable, blocking: bool) -> Any:
        """A blocking flush waits until the bytes in flight are under the write budget.

        A chunk counts as flushed once the sink has it queued in order (as wasmtime's
        own HTTP body streams do): waiting for each chunk to reach the socket would
        cost a round trip to the event loop per chunk. Write failures surface on the
        next operation, and the exchange waits for every chunk before it completes.
        """
        while blocking:
            with self._lock:
                if self._settle() < WRITE_BUDGET or self._error is not None:
                    break
                oldest = self._in_flight[0][0]
            concurrent.futures.wait([oldest], max(0.0, table.deadline() - time.monotonic()))
            if not oldest.done():
                raise DeadlineExceeded("the component waited on an output stream past its deadline")
        with self._lock:
            self._settle()
            if self._error is not None:
                return Err(stream_failed(table, self._error))
        return OK


def stream_failed(table: ResourceTable, error: IoError) -> Variant:
    """The ``last-operation-failed`` stream error, with a new error handle."""
    return Variant("last-operation-failed", table.own(IoError(error.message, error.http_code)))


def functions(table: ResourceTable) -> Mapping[str, Mapping[str, Callable[..., Any]]]:
    """The host functions of wasi:io, by interface and function name."""

    def poll(_store: Any, reps: list[int]) -> list[int]:
        waitables = [table.get(rep, Pollable).waitable for rep in reps]
        return wait_any(table, waitables)

    def ins(rep: int) -> InputStream:
        return table.get(rep, InputStream)

    def outs(rep: int) -> OutputStream:
        return table.get(rep, OutputStream)

    def write_and_flush(_s: Any, rep: int, data: bytes) -> Any:
        result = outs(rep).write(table, data)
        return result if isinstance(result, Err) else outs(rep).flush(table, True)

    def splice(rep: int, src: int, length: int, blocking: bool) -> Any:
        read = ins(src).read(table, length, blocking)
        if isinstance(read, Err):
            return read
        written = outs(rep).write(table, read.value)
        if blocking and isinstance(written, Ok):
            written = outs(rep).flush(table, True)
        return written if isinstance(written, Err) else Ok(len(read.value))

    def block(_s: Any, rep: int) -> None:
        wait_any(table, [table.get(rep, Pollable).waitable])

    def subscribe(waitable: Waitable) -> Any:
        return table.own(Pollable(waitable))

    return {
        "wasi:io/error": {
            "[method]error.to-debug-string": lambda _s, rep: table.get(rep, IoError).message,
        },
        "wasi:io/poll": {
            "[method]pollable.ready": lambda _s, rep: table.get(rep, Pollable).waitable.ready(),
            "[method]pollable.block": block,
            "poll": poll,
        },
        "wasi:io/streams": {
            "[method]input-stream.read": lambda _s, rep, n: ins(rep).read(table, n, False),
            "[method]input-stream.blocking-read": lambda _s, rep, n: ins(rep).read(table, n, True),
            "[method]input-stream.skip": lambda _s, rep, n: ins(rep).skip(table, n, False),
            "[method]input-stream.blocking-skip": lambda _s, rep, n: ins(rep).skip(table, n, True),
            "[method]input-stream.subscribe": lambda _s, rep: subscribe(ins(rep)),
            "[method]output-stream.check-write": lambda _s, rep: outs(rep).check_write(table),
            "[method]output-stream.write": lambda _s, rep, data: outs(rep).write(table, data),
            "[method]output-stream.blocking-write-and-flush": write_and_flush,
            "[method]output-stream.flush": lambda _s, rep: outs(rep).flush(table, False),
            "[method]output-stream.blocking-flush": lambda _s, rep: outs(rep).flush(table, True),
            "[method]output-stream.subscribe": lambda _s, rep: subscribe(outs(rep)),
            "[method]output-stream.write-zeroes": lambda _s, rep, n: outs(rep).write(
                table, bytes(min(n, WRITE_BUDGET))
            ),
            "[method]output-stream.blocking-write-zeroes-and-flush": lambda _s, rep, n: (
                write_and_flush(_s, rep, bytes(min(n, WRITE_BUDGET)))
            ),
            "[method]output-stream.splice": lambda _s, rep, src, n: splice(rep, src, n, False),
            "[method]output-stream.blocking-splice": lambda _s, rep, src, n: splice(
                rep, src, n, True
            ),
        },
    }
