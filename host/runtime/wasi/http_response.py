"""A ``wasi:http`` response on its way out: from the guest's body writes to the
provider's sink (``providers.http_server.ResponseSink``).

- ``ResponseBody``: the sink of the guest's body stream. With a declared
  Content-Length it holds the body to it, as wasmtime's wasi-http host does: a
  write that would take the body past the length fails the stream with
  ``HTTP-response-body-size`` (the bytes written, the refused ones included) and
  is not sent; ``finish`` at any other length fails the same way. Either breaks
  the response off (``ResponseSender.abort``): nothing past the length, and no
  client left waiting for bytes that will not come. Chunks written before
  ``response-outparam.set`` wait here for it.
- ``ResponseSender``: the sends of one response (head, chunks, end), in order.
  While the guest runs they are held back (a wake-up of the loop mid-call makes
  the loop and the guest fight over the GIL): a response that is whole when the
  call returns goes to the sink in one piece (``ResponseSink.complete``: one
  write, with its length), with no pump. Otherwise the loop's pump sends them
  one by one: from the call's return, from the guest's first wait, or once
  ``HOLD_BYTES`` are queued, so a long body still streams out chunk by chunk.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from typing import Any

from host.runtime import inline
from host.runtime.wasi.body_length import body_size_error
from host.runtime.wasi.io import IoError, StreamFailed
from host.runtime.wasi.values import Variant
from providers.http_server import ResponseSink

__all__ = ["HOLD_BYTES", "ResponseBody", "ResponseSender"]

# Body bytes held back while the guest runs without waiting (see ResponseSender).
HOLD_BYTES = 32 * 1024


class ResponseBody:
    """The sink of a response body, held to ``length`` (None: any length, chunked)."""

    def __init__(self, length: int | None) -> None:
        self.length = length
        self._written = 0  # what the guest wrote, refused bytes included (as wasmtime counts)
        self._sender: ResponseSender | None = None
        self._held: list[tuple[bytes, concurrent.futures.Future[None]]] = []
        self._finish_held = False
        self._broken: str | None = None  # why, when it broke before the response was set
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> concurrent.futures.Future[None] | None:
        length = self.length
        if length is not None:
            self._written += len(chunk)
            if self._written > length:
                return self._too_long(length)
        with self._lock:
            if self._sender is not None:
                return self._sender.write(chunk)
            held: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._held.append((chunk, held))
            return held

    def _too_long(self, length: int) -> concurrent.futures.Future[None]:
        written = self._written
        reason = f"wrote {written} bytes of a response body whose content-length is {length}"
        self._break(reason)
        failed: concurrent.futures.Future[None] = concurrent.futures.Future()
        failed.set_exception(StreamFailed(IoError(reason, body_size_error("response", written))))
        return failed

    def finish(self) -> Variant | None:
        """End the body; the ``error-code`` when it is not the declared length."""
        length = self.length
        if length is not None and self._written != length:
            if self._written < length:
                self._break(
                    f"finished a response body after {self._written} of the "
                    f"{length} bytes its content-length declares"
                )
            return body_size_error("response", self._written)
        with self._lock:
            if self._sender is None:
                self._finish_held = True
                return None
        self._sender.finish()
        return None

    def abort(self) -> None:
        self._break("the component dropped the response body without finishing it")

    def _break(self, reason: str) -> None:
        with self._lock:
            sender = self._sender
            if sender is None:
                self._broken = self._broken or reason
                return
        sender.abort(reason)

    def bind(self, sender: ResponseSender) -> None:
        """The response is set: what waited here goes to ``sender``."""
        with self._lock:
            self._sender = sender
            held, self._held = self._held, []
            if self._broken is not None:
                sender.abort(self._broken)
                for _chunk, waiting in held:
                    waiting.set_exception(StreamFailed(IoError(self._broken)))
                return
            for chunk, waiting in held:
                sent = sender.write(chunk)
                if sent is None:
                    waiting.set_result(None)
                else:
                    _chain(sent, waiting)
            if self._finish_held:
                sender.finish()


def _chain(
    source: concurrent.futures.Future[None], target: concurrent.futures.Future[None]
) -> None:
    """Complete ``target`` as ``source`` completes."""

    def copy(done: concurrent.futures.Future[None]) -> None:
        exc = None if done.cancelled() else done.exception()
        if done.cancelled():
            target.cancel()
        elif exc is not None:
            target.set_exception(exc)
        else:
            target.set_result(None)

    source.add_done_callback(copy)


class ResponseSender:
    """One response's sends to ``sink``, in order (see the module docstring).

    The guest's side (``start``, ``write``, ``finish``, ``abort``, ``release_held``)
    runs on its worker thread; ``release``, ``settle`` and ``close`` on the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sink: ResponseSink) -> None:
        self._loop = loop
        self._sink = sink
        self.finished = False
        self.aborted: str | None = None  # why the response was broken off
        self.sent_any = False  # something went towards the client
        self._declared: int | None = None  # the head's Content-Length
        self._outbox: collections.deque[_Send] = collections.deque()
        self._holding = True
        self._held_bytes = 0
        self._lock = threading.Lock()
        self._pump_due = False  # a pump is scheduled or running
        self._pump: asyncio.Task[None] | None = None
        self._send_failed = False
        self._head_failed = False

    # -- the guest's side (worker thread) ------------------------------------

    def start(self, status: int, headers: list[tuple[str, bytes]], length: int | None) -> None:
        """The head; ``length``: the Content-Length among ``headers`` (None: none)."""
        self._declared = length
        self._send(_START, (status, headers))

    def write(self, chunk: bytes) -> concurrent.futures.Future[None] | None:
        return self._send(_WRITE, chunk)

    def finish(self) -> None:
        self.finished = True
        self._send(_FINISH, None)

    def abort(self, reason: str) -> None:
        """Break the response off: what is still held back is dropped, never sent."""
        with self._lock:
            if self.finished or self.aborted is not None:
                return
            self.aborted = reason
            if self._holding:
                self._outbox.clear()

    def _send(self, op: int, arg: Any) -> concurrent.futures.Future[None] | None:
        """Queue ``op`` for the client; the loop's pump sends queued ops in order.

        The future completes when the op reached the sink. An op held back gets
        none (None: done, for the output stream): held bytes stay under the write
        budget, and a failure to send them fails the exchange as any other.
        """
        with self._lock:
            if self.aborted is not None:
                return None
            self.sent_any = True
            if self._holding:
                if op == _WRITE:
                    self._held_bytes += len(arg)
                if self._held_bytes < HOLD_BYTES:
                    self._outbox.append((op, arg, None))
                    return None
                # Sending starts here: a call on the event loop's thread stops first.
                inline.refuse("a response longer than the host holds back")
                self._holding = False
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._outbox.append((op, arg, done))
            schedule, self._pump_due = not self._pump_due, True
        if schedule:
            self._loop.call_soon_threadsafe(self._start_pump)
        return done

    def release_held(self) -> None:
        """Stop holding sends back; start the pump for what is queued (guest's thread)."""
        with self._lock:
            if not self._holding:
                return
            self._holding = False
            schedule = bool(self._outbox) and not self._pump_due
            self._pump_due = self._pump_due or schedule
        if schedule:
            self._loop.call_soon_threadsafe(self._start_pump)

    # -- the loop's side -----------------------------------------------------

    def release(self) -> None:
        """The guest's call returned: send what it held back."""
        with self._lock:
            self._holding = False
            whole = None if self._pump_due else self._whole_response()
            schedule = whole is None and bool(self._outbox) and not self._pump_due
            self._pump_due = self._pump_due or schedule
        if whole is not None:
            self._complete(*whole)
        elif schedule:
            self._start_pump()

    def _whole_response(self) -> tuple[int, list[tuple[str, bytes]], list[_Send]] | None:
        """The held sends when they are a whole response, nothing of it sent yet
        (head, chunks, end; a declared length matching the body); taken out."""
        outbox = self._outbox
        if len(outbox) < 2 or outbox[0][0] != _START or outbox[-1][0] != _FINISH:
            return None
        sends = list(outbox)
        if any(op != _WRITE for op, _, _ in sends[1:-1]):
            return None
        size = sum(len(chunk) for _, chunk, _ in sends[1:-1])
        if self._declared is not None and self._declared != size:
            return None  # a bodiless answer to HEAD: its head keeps the length it declares
        status, headers = sends[0][1]
        outbox.clear()
        return status, headers, sends

    def _complete(self, status: int, headers: list[tuple[str, bytes]], sends: list[_Send]) -> None:
        """Hand a whole response to the sink at once: no pump, one write to the client."""
        body = b"".join(chunk for _, chunk, _ in sends[1:-1])
        try:
            self._sink.complete(status, headers, body)
        except Exception as exc:
            self._send_failed = True
            for _, _, done in sends:
                if done is not None and not done.cancelled():
                    done.set_exception(exc)
            return
        for _, _, done in sends:
            if done is not None and not done.cancelled():
                done.set_result(None)

    def _start_pump(self) -> None:
        self._pump = asyncio.ensure_future(self._run_pump())

    async def _run_pump(self) -> None:
        while True:
            with self._lock:
                if not self._outbox:
                    self._pump_due = False
                    return
                op, arg, done = self._outbox.popleft()
            if done is not None and done.cancelled():
                continue
            try:
                await self._deliver(op, arg)
            except BaseException as exc:
                self._send_failed = True
                if done is not None and not done.cancelled():
                    done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                if done is not None and not done.cancelled():
                    done.set_result(None)

    async def _deliver(self, op: int, arg: Any) -> None:
        if op == _START:
            try:
                await self._sink.start(*arg)
            except BaseException:
                self._head_failed = True
                raise
            return
        if self._head_failed:
            raise StreamFailed(IoError("the client is gone"))
        if op == _WRITE:
            try:
                await self._sink.write(arg)
            except (ConnectionError, RuntimeError) as exc:
                raise StreamFailed(IoError(f"the client is gone: {exc}")) from exc
        else:
            await self._sink.finish()

    async def settle(self, timeout_s: float) -> bool:
        """Wait for what the guest sent to reach the sink; True when all of it did."""
        # ``release`` started the pump, or it was scheduled before the guest's call
        # returned (both hops are call_soon_threadsafe from the worker, which keeps
        # their order).
        pump = self._pump
        if pump is not None and not pump.done():
            done, _ = await asyncio.wait([pump], timeout=timeout_s)
            if not done:
                return False
        return not self._outbox and not self._send_failed and self.sent_any

    def close(self) -> None:
        """Cancel what is still pending."""
        with self._lock:
            left, self._outbox = list(self._outbox), collections.deque()
        for _op, _arg, done in left:
            if done is not None:
                done.cancel()
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()


# What the pump sends: the head, a body chunk, the end.
_START, _WRITE, _FINISH = 0, 1, 2
_Send = tuple[int, Any, concurrent.futures.Future[None] | None]
