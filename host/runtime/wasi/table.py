"""Host-defined resources: the objects behind a component's WASI handles.

wasmtime's embedding API cannot make the native ``wasi:http`` resources, so
the host defines every resource of the WASI interfaces it serves itself
(``ResourceType.host(kind)``): a handle the guest holds is ``(kind, rep)``, and
``rep`` is a key in the component's ``ResourceTable``, which maps it to a
Python object. The guest dropping its handle runs the table's destructor.

Objects made while an HTTP exchange runs (its request, bodies, streams,
outgoing calls) belong to that exchange's ``CallScope``: when the exchange
ends they are released even if the guest never dropped them, so an instance
reused for the next request cannot hold the previous one's buffers or
sockets. The stdio streams belong to the instance instead (componentize-py
fetches stdout once and keeps the handle for later requests): they are
released when the instance is dropped. Objects made outside an exchange
(clock pollables at start-up) live until the guest drops them;
``MAX_OBJECTS`` bounds them.

Host functions run on the worker thread that runs the guest; waits on the
event loop (``CallScope.wait``) end at the call's deadline with
``DeadlineExceeded``, which the pool reports as it reports an interrupted guest.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import itertools
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from host.errors import ComponentTrapped, DeadlineExceeded
from host.runtime import inline
from host.runtime.wit_values import HostHandle

__all__ = [
    "KINDS",
    "CallScope",
    "HostObject",
    "ResourceTable",
    "WasiTrap",
    "current_scope",
]

T = TypeVar("T", bound="HostObject")

# Resource kinds (the ``n`` of ``ResourceType.host(n)``), by the names WASI 0.2 gives
# them; aliases (``headers``, ``io-error``...) name the same kind. The base keeps them
# apart from other host resources (keyvalue buckets are 1).
_BASE = 0x5741_0000
KINDS: dict[str, int] = {
    name: _BASE + i
    for i, name in enumerate(
        [
            "pollable",
            "error",
            "input-stream",
            "output-stream",
            "terminal-input",
            "terminal-output",
            "fields",
            "incoming-request",
            "outgoing-request",
            "request-options",
            "response-outparam",
            "incoming-response",
            "incoming-body",
            "future-trailers",
            "outgoing-response",
            "outgoing-body",
            "future-incoming-response",
            "network",
        ],
        start=1,
    )
}
KINDS.update({"io-error": KINDS["error"], "headers": KINDS["fields"], "trailers": KINDS["fields"]})
# Resources of deny-all interfaces never handed out (descriptors, sockets...) get a
# kind from here on, one per name.
DENIED_KIND_BASE = _BASE + 0x1000

# Live objects one component may hold outside exchanges (a guest that never drops
# its handles traps instead of growing the host without bound).
MAX_OBJECTS = 100_000


class WasiTrap(ComponentTrapped):
    """A guest misused a WASI interface (a stale handle, a second ``consume``...)."""


class HostObject:
    """The Python side of one resource; ``KIND`` names its resource kind."""

    KIND: ClassVar[int]

    def release(self) -> None:
        """The handle is gone (dropped, or its exchange ended): free what it holds."""


_SCOPE: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar(
    "wasi_call_scope", default=None
)


def current_scope() -> CallScope | None:
    """The exchange the running guest call serves (worker threads copy the context)."""
    return _SCOPE.get()


@dataclass
class CallScope:
    """One guest call's deadline and the resources it made."""

    loop: asyncio.AbstractEventLoop
    deadline: float  # time.monotonic()
    reps: list[int] = field(default_factory=list)
    # Run on the guest's thread before it waits on anything (``ResourceTable.deadline``):
    # the exchange sends what it held back, since the guest may wait for it.
    before_wait: Callable[[], None] | None = None

    def activate(self) -> contextvars.Token[CallScope | None]:
        return _SCOPE.set(self)

    @staticmethod
    def deactivate(token: contextvars.Token[CallScope | None]) -> None:
        _SCOPE.reset(token)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


class ResourceTable:
    """rep -> object for one component (all its instances), safe across threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline_s: float) -> None:
        self.loop = loop
        self.deadline_s = deadline_s  # bounds waits outside an exchange
        self._objects: dict[int, HostObject] = {}
        self._reps = itertools.count(1)
        # Objects of one instance (``own(obj, store)``), by ``pool.store_key``.
        self._by_store: dict[int, list[int]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._objects)

    def own(self, obj: HostObject, store: int | None = None) -> HostHandle:
        """Register ``obj`` and hand its new handle to the guest.

        With ``store`` (the host function's context), the object belongs to that
        instance rather than to the exchange that asked for it: the stdio streams,
        which guests fetch once and keep. It is released when the instance is gone.
        """
        scope = current_scope() if store is None else None
        with self._lock:
            if scope is None and len(self._objects) >= MAX_OBJECTS:
                raise WasiTrap(f"the component holds over {MAX_OBJECTS} WASI handles")
            rep = next(self._reps) & 0xFFFF_FFFF
            self._objects[rep] = obj
            if store is not None:
                # The context's address is the instance's ``pool.store_key``.
                self._by_store.setdefault(store, []).append(rep)
        if scope is not None:
            scope.reps.append(rep)
        return HostHandle(rep, obj.KIND)

    def get(self, rep: int, cls: type[T]) -> T:
        obj = self._objects.get(rep)
        if not isinstance(obj, cls):
            raise WasiTrap(f"no live {cls.__name__} behind handle {rep}")
        return obj

    def take(self, rep: int, cls: type[T]) -> T:
        """The object of a handle the guest gave up (an ``own`` parameter)."""
        with self._lock:
            obj = self._objects.pop(rep, None)
        if not isinstance(obj, cls):
            raise WasiTrap(f"no live {cls.__name__} behind handle {rep}")
        return obj

    def drop(self, _store: Any, rep: int) -> None:
        """The destructor of every kind: the guest dropped its handle."""
        with self._lock:
            obj = self._objects.pop(rep, None)
        if obj is not None:
            obj.release()

    def release_scope(self, scope: CallScope) -> None:
        """Release what an exchange made and the guest still holds."""
        with self._lock:
            objs = [self._objects.pop(rep, None) for rep in scope.reps]
        scope.reps.clear()
        for obj in objs:
            if obj is not None:
                obj.release()

    def forget_store(self, key: int) -> None:
        """An instance is gone: release the objects that were its own."""
        with self._lock:
            objs = [self._objects.pop(rep, None) for rep in self._by_store.pop(key, [])]
        for obj in objs:
            if obj is not None:
                obj.release()

    # -- waiting on the event loop from a guest's worker thread ------------

    def deadline(self) -> float:
        """The deadline of a wait the guest's call is about to start (every wait asks)."""
        inline.refuse("a wait")  # on the event loop's thread, a wait would stall it
        scope = current_scope()
        if scope is None:
            return time.monotonic() + self.deadline_s
        if scope.before_wait is not None:
            scope.before_wait()
        return scope.deadline

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run ``coro`` on the event loop (I/O on the guest's behalf)."""
        inline.refuse("I/O on the event loop", coro)
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def wait(self, future: concurrent.futures.Future[Any], what: str) -> Any:
        """The future's result, waiting at most until the call's deadline."""
        try:
            return future.result(max(0.0, self.deadline() - time.monotonic()))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DeadlineExceeded(f"the component waited on {what} past its deadline") from None
