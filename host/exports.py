"""Calls between components on different hosts: both ends of one wire.

A component's import linked to a component that runs elsewhere becomes a
request on the lattice (``RemoteCalls``, the caller's end); the host running the
target answers it from the component's exported interface (``ExportServer``,
the callee's end). Both convert values with a ``WireCodec`` for the function's
type, made once per type (``CodecCache``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from host.errors import UnknownComponent
from host.runtime.components import HostRuntime
from host.wire.codec import WireCodec
from lattice import tracing
from lattice.connection import Connection, NatsOptions
from lattice.direct import DirectRequests, Unsent
from lattice.invoke import invoke, invoke_direct, serve_component
from lattice.responder import Responder
from lattice.subjects import Subjects
from providers import contracts
from providers.contracts import unversioned

# Calls from other hosts handled at once per exported interface; beyond the
# component's own limit they wait in its instance pool, under its deadline.
REMOTE_CALL_CONCURRENCY = 64
# After a direct connection could not be made, calls go through the event loop for this
# long before the next try (a server refusing them is not asked on every call).
DIRECT_RETRY_S = 5.0

log = logging.getLogger(__name__)


class CodecCache:
    """One ``WireCodec`` per function type (building one walks the type)."""

    def __init__(self) -> None:
        self._codecs: dict[int, tuple[Any, WireCodec]] = {}

    def for_func(self, func_type: Any) -> WireCodec:
        # Keyed by identity, and the type kept alongside: a freed type's id may be reused.
        cached = self._codecs.get(id(func_type))
        if cached is None or cached[0] is not func_type:
            cached = self._codecs[id(func_type)] = (func_type, WireCodec.for_func(func_type))
        return cached[1]


class RemoteCalls:
    """The caller's end: the runtime's ``remote`` invoker (``HostRuntime(remote=...)``)."""

    def __init__(
        self,
        nc: Connection,
        subjects: Subjects,
        codecs: CodecCache,
        loop: asyncio.AbstractEventLoop,
        timeout_s: float,
        direct: NatsOptions | None = None,
    ) -> None:
        self._nc = nc
        self._subjects = subjects
        self._codecs = codecs
        self._loop = loop
        self._timeout_s = timeout_s
        self._calls: set[asyncio.Task[None]] = set()  # in flight: a task needs a holder
        # ``direct``: the options of the process's connection; each worker thread then
        # sends its calls on a connection of its own (lattice.direct), with no hand-off
        # to the event loop and back.
        self._direct = DirectRequests(direct) if direct is not None else None
        self.direct_calls = 0  # calls that went that way
        self._direct_after = 0.0  # time.monotonic() before which none is tried

    def invoke(
        self, target: str, interface: str, func: str, args: tuple[Any, ...], func_type: Any
    ) -> Any:
        """A linked call to a component on another host (runs on a worker thread)."""
        codec = self._codecs.for_func(func_type)
        payload = codec.encode_params(args)
        interface = unversioned(interface)
        headers = tracing.inject_headers()
        if self._direct is not None and time.monotonic() >= self._direct_after:
            try:
                data = invoke_direct(
                    self._direct, self._subjects, target, interface, func, payload,
                    headers=headers, timeout_s=self._timeout_s,
                )  # fmt: skip
            except Unsent as exc:
                # Not sent: through the event loop instead, for a while.
                self._direct_after = time.monotonic() + DIRECT_RETRY_S
                log.info("linked calls go through the event loop for %g s: %s", DIRECT_RETRY_S, exc)
            else:
                self.direct_calls += 1
                return codec.decode_result(data)
        call = invoke(
            self._nc,
            self._subjects,
            target,
            interface,
            func,
            payload,
            headers=headers,
            timeout_s=self._timeout_s,
        )
        reply: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._start, _hand_over(call, reply))
        return codec.decode_result(reply.result(self._timeout_s + 1))

    def close(self) -> None:
        """Close the worker threads' own connections."""
        if self._direct is not None:
            self._direct.close()

    def _start(self, call: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(call)
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)


async def _hand_over(
    call: Coroutine[Any, Any, bytes], reply: concurrent.futures.Future[bytes]
) -> None:
    """``call``'s outcome into ``reply``, from inside the task that awaited it.

    ``asyncio.run_coroutine_threadsafe`` copies a task's outcome over in a callback,
    one event-loop iteration after the task ends; here the waiting worker thread is
    woken at once (measured: ~15 µs of a cross-host call's ~0.4 ms).
    """
    try:
        result = await call
    except asyncio.CancelledError:
        reply.cancel()  # the worker sees what run_coroutine_threadsafe gave it
        raise
    except BaseException as exc:
        reply.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
    else:
        reply.set_result(result)


class ExportServer:
    """The callee's end: serves the exports of this host's components to other hosts."""

    def __init__(
        self,
        nc: Connection,
        subjects: Subjects,
        runtime: HostRuntime,
        codecs: CodecCache,
        host_id: str,
    ) -> None:
        self._nc = nc
        self._subjects = subjects
        self._runtime = runtime
        self._codecs = codecs
        self._host_id = host_id
        # component id -> responders serving its exports to other hosts
        self._served: dict[str, list[Responder]] = {}

    async def serve(self, component_id: str) -> None:
        """Let other hosts call the running component's exported interfaces; idempotent."""
        if component_id in self._served:
            return
        running = self._runtime.get(component_id)
        responders = []
        for export in running.exports:
            if export == contracts.HTTP_HANDLER or export not in running.export_functions:
                continue  # HTTP comes through the http-server; resources cannot cross hosts

            async def handle(
                func: str, body: bytes, headers: Mapping[str, str], export: str = export
            ) -> bytes:
                return await self._answer(component_id, export, func, body, headers)

            responders.append(
                await serve_component(
                    self._nc,
                    self._subjects,
                    component_id,
                    unversioned(export),
                    handle,
                    concurrency=REMOTE_CALL_CONCURRENCY,
                )
            )
        self._served[component_id] = responders

    async def stop_serving(self, component_id: str) -> None:
        for responder in self._served.pop(component_id, []):
            await responder.close()

    async def close(self) -> None:
        """Serve nothing more; calls in flight get their responders' grace period."""
        responders = [r for rs in self._served.values() for r in rs]
        self._served.clear()
        await asyncio.gather(*(responder.close() for responder in responders))

    async def _answer(
        self, component_id: str, export: str, func: str, body: bytes, headers: Mapping[str, str]
    ) -> bytes:
        running = self._runtime.get(component_id)
        func_type = running.export_functions.get(export, {}).get(func)
        if func_type is None:
            raise UnknownComponent(f"component {component_id} has no function {export}#{func}")
        codec = self._codecs.for_func(func_type)
        with tracing.server_span(f"{component_id} {export}#{func}", headers, self._host_id):
            result = await self._runtime.call(
                component_id, export, func, *codec.decode_params(body)
            )
        encoded: bytes = codec.encode_result(result)
        return encoded
