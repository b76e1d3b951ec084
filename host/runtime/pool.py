"""Instance pools: run calls into a component on worker threads, under limits.

Each running component owns a pool: up to ``max_concurrency`` instances, each
in its own store, and as many worker threads. A call takes a free slot (or
waits for one until its deadline), runs on a worker thread (ctypes releases
the GIL while wasm runs, so the event loop keeps serving), and puts the
instance back. A caller that can run the call again (``inline=True``) has it
tried on the event loop's thread first, on an idle instance, as an attempt the
host may give up (``host.runtime.inline``): no hand-off to a worker and back.
An instance whose call failed in any way is discarded, never reused: a trap
can leave its memory in any state.

Limits per instance: an execution deadline (epoch interruption) per call and
a linear-memory cap (store limiter). ``HostLimits`` bounds what a request may
ask for at all: the runtime refuses a pool over them instead of clamping it.
A pool made with ``reuse=False`` gives each call a fresh instance (a wasi:http
component whose engine keeps per-request state, StarlingMonkey's); ``stop_reuse``
switches a running pool to that. A caller that must know more than the result
passes a ``CallInfo`` (was the instance used before?) and a ``keep`` check run on
the worker right after the guest returns: when it says no, the instance is
dropped as a failed one would be (a wasi:http guest that returned without
answering).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import component as wc

from host.errors import (
    CallError,
    ComponentTrapped,
    DeadlineExceeded,
    LimitRefused,
    Overloaded,
    ResourceLimitExceeded,
    UnknownComponent,
)
from host.runtime.c_api import set_epoch_deadline
from host.runtime.engine import MAX_BYTES_OUT_OF_GUEST, WasmEngine, trap_reason
from host.runtime.fastcall import FastFunc
from host.runtime.inline import ATTEMPT_TICKS, Abandoned, Attempt, InlineGate
from host.runtime.inline import current as current_attempt
from host.runtime.workers import Workers

log = logging.getLogger(__name__)


@dataclass
class CallInfo:
    """Filled in by ``InstancePool.call`` for a caller that asks."""

    # The instance had served calls before this one (False: made for it, or warmed).
    reused: bool = False


@dataclass(frozen=True)
class Limits:
    max_concurrency: int = 8
    deadline_s: float = 10.0
    memory_bytes: int = 256 * 2**20


@dataclass(frozen=True)
class HostLimits:
    """What one host allows, whatever a request asks for."""

    # Instances and worker threads of one component.
    max_concurrency: int = 64
    # Worker threads of all components together (each pool counts at its maximum).
    max_threads: int = 512
    # Components fetched and compiled at once (each holds a thread of the runtime).
    concurrent_loads: int = 4
    # How long a pool's threads get to exit once it is closed.
    join_timeout_s: float = 2.0

    def check(self, component_id: str, limits: Limits) -> None:
        """Refuse limits this host does not grant, naming the cap."""
        if limits.max_concurrency < 1:
            raise LimitRefused(f"component {component_id}: max_concurrency must be at least 1")
        if limits.max_concurrency > self.max_concurrency:
            raise LimitRefused(
                f"component {component_id}: max_concurrency {limits.max_concurrency} is over "
                f"this host's cap of {self.max_concurrency} per component"
            )
        if limits.deadline_s <= 0 or limits.memory_bytes <= 0:
            raise LimitRefused(f"component {component_id}: deadline and memory must be positive")


def store_key(store: wasmtime.Store | wasmtime.StoreContext) -> int:
    """The same number for a store and for the context a host function receives from it."""
    return ctypes.cast(store._context(), ctypes.c_void_p).value or 0


class _Instance:
    """One instantiated component in its own store, used by one thread at a time."""

    def __init__(self, store: wasmtime.Store, instance: wc.Instance) -> None:
        self.store = store
        self.instance = instance
        # Converters are built once per export (wasmtime-py re-derives types per call).
        self.funcs: dict[tuple[str, str], FastFunc] = {}
        self.calls = 0
        # The store's context address: stable while the store lives.
        self.context = store_key(store)
        # Releases the host objects tied to this store (set by the pool).
        self.forget: weakref.finalize[Any, _Instance] | None = None

    def discard(self) -> None:
        """Free the store, and the host objects tied to it, now.

        A failed call's exception chain holds frames that reference the instance
        until the cycle collector finds them (measured: 7 of 20 trapped instances
        still alive after their requests), each with the guest's whole memory. The
        instance must not be used again.
        """
        if self.forget is not None:
            # First: once closed, the store's context address may be reused by a new one.
            self.forget()
        self.funcs.clear()
        self.store.close()

    def func(self, interface: str, name: str) -> FastFunc:
        key = (interface, name)
        found = self.funcs.get(key)
        if found is None:
            found = FastFunc(self._lookup(interface, name), self.store)
            self.funcs[key] = found
        return found

    def _lookup(self, interface: str, name: str) -> wc.Func:
        parent = None
        if interface:
            parent = self.instance.get_export_index(self.store, interface)
            if parent is None:
                raise UnknownComponent(f"the component does not export {interface}")
        index = self.instance.get_export_index(self.store, name, parent)
        func = self.instance.get_func(self.store, index) if index is not None else None
        if func is None:
            where = f"{interface}#{name}" if interface else name
            raise UnknownComponent(f"the component does not export function {where}")
        return func


class InstancePool:
    def __init__(
        self,
        component_id: str,
        engine: WasmEngine,
        component: wc.Component,
        linker: wc.Linker,
        limits: Limits,
        *,
        reuse: bool = True,
        forget_store: Callable[[int], None] | None = None,
        inline: bool = False,
    ) -> None:
        self.component_id = component_id
        self.engine = engine
        self.component = component
        self.linker = linker
        self.limits = limits
        self._deadline_ticks = engine.deadline_ticks(limits.deadline_s)
        # False: each instance serves one call (wasi:http components expect a fresh one).
        self.reuse = reuse
        # Told the ``store_key`` of each instance that is gone (host objects tied to it).
        self._forget_store = forget_store
        self._idle: list[_Instance] = []
        self._lock = threading.Lock()
        self._instantiate_lock = threading.Lock()
        self._slots = asyncio.Semaphore(limits.max_concurrency)
        self._executor = self._new_executor(limits.max_concurrency)
        self.active = 0
        self._drained = asyncio.Event()
        self.invocations = 0
        self.failures = 0
        self._closed = False
        # Calls tried on the event loop's thread first (``host.runtime.inline``): only
        # for a component whose every host call can refuse (the host serves its WASI).
        self.inline = InlineGate(inline)

    def _new_executor(self, workers: int) -> Workers:
        return Workers(workers, f"wasm-{self.component_id}")

    # -- lifecycle ---------------------------------------------------------

    async def warm(self, count: int = 1) -> None:
        """Have ``count`` idle instances ready; the first proves the component instantiates."""
        while self.idle_instances < min(count, self.limits.max_concurrency):
            instance = await self._executor.submit(self._instantiate)
            with self._lock:
                self._idle.append(instance)

    def resize(self, limits: Limits) -> None:
        """Change limits; in-flight calls finish on the old executor."""
        if limits.max_concurrency != self.limits.max_concurrency:
            old = self._executor
            self._executor = self._new_executor(limits.max_concurrency)
            self._slots = asyncio.Semaphore(limits.max_concurrency)
            old.close()
        self.limits = limits
        self._deadline_ticks = self.engine.deadline_ticks(limits.deadline_s)
        with self._lock:
            del self._idle[limits.max_concurrency :]

    async def close(self, drain_timeout_s: float = 10.0, join_timeout_s: float = 2.0) -> None:
        """Stop taking calls, let in-flight ones finish (up to the timeout); idempotent.

        Then the worker threads get ``join_timeout_s`` to exit (one still running
        a guest call exits when its deadline interrupts it).
        """
        if self._closed:
            return
        self._closed = True
        if self.active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), drain_timeout_s)
        executor = self._executor
        executor.close()
        with self._lock:
            self._idle.clear()
        if not await executor.wait_closed(join_timeout_s):
            log.warning(
                "component %s: worker threads still busy %s s after close",
                self.component_id,
                join_timeout_s,
            )

    @property
    def idle_instances(self) -> int:
        return len(self._idle)

    @property
    def threads(self) -> int:
        """Worker threads started by this pool's current executor."""
        return self._executor.threads

    # -- calls -------------------------------------------------------------

    def stop_reuse(self) -> None:
        """From now on every call gets a fresh instance; idle ones are dropped."""
        self.reuse = False
        with self._lock:
            self._idle = [i for i in self._idle if i.calls == 0]

    async def call(
        self,
        interface: str,
        func: str,
        *args: Any,
        fresh: bool = False,
        info: CallInfo | None = None,
        keep: Callable[[], bool] | None = None,
        inline: bool = False,
    ) -> Any:
        """``func(*args)`` on an instance; ``fresh`` insists on one never used before.

        ``inline``: the call may be tried on the event loop's thread first; raises
        ``Abandoned`` when that attempt is given up (the caller calls again without).
        """
        if self._closed:
            raise UnknownComponent(f"component {self.component_id} is stopping")
        slots = self._slots
        # The gate is asked once per call: each answer "no" uses up one of its skips.
        attempt_first = inline and self.inline.open()
        if attempt_first and not slots.locked():
            # An attempt is synchronous: nothing else runs on this loop meanwhile, so it
            # needs neither the slot (an idle instance means one is free) nor the count
            # of active calls a close waits for.
            instance = self._take_idle(fresh)
            if instance is not None:
                return self._attempt(instance, interface, func, args, info, keep)
        try:
            if slots.locked():
                # asyncio.timeout rather than wait_for: wait_for runs acquire() in a
                # task of its own, and with more requests than instances most calls
                # wait here (measured: ~15 % of the loop's CPU per HTTP request).
                async with asyncio.timeout(self.limits.deadline_s):
                    await slots.acquire()
            else:
                await slots.acquire()  # free slot: no timer task needed
        except TimeoutError:
            raise Overloaded(
                f"component {self.component_id}: all {self.limits.max_concurrency} "
                f"instances stayed busy for {self.limits.deadline_s} s"
            ) from None
        if self._closed:  # closed while this call waited for a slot
            slots.release()
            raise UnknownComponent(f"component {self.component_id} is stopping")
        if attempt_first:
            # After a wait for a slot: the instance a worker just put back may serve here
            # (without this, calls under steady load would stay with the workers).
            instance = self._take_idle(fresh)
            if instance is not None:
                slots.release()
                return self._attempt(instance, interface, func, args, info, keep)
        self.active += 1
        self._drained.clear()
        try:
            # Workers run it in a copy of this context: the trace span carries over.
            if fresh or info is not None or keep is not None:
                return await self._executor.submit(
                    self._call, interface, func, args, fresh, info, keep
                )
            return await self._executor.submit(self._call, interface, func, args)
        finally:
            self.active -= 1
            slots.release()
            if self.active == 0:
                self._drained.set()

    def call_sync(self, interface: str, func: str, args: tuple[Any, ...]) -> Any:
        """A call on the current thread: a linked component calling this one.

        On a worker thread, a call of its own. Inside an attempt on the event loop's
        thread (``host.runtime.inline``), a part of that attempt.
        """
        if self._closed:
            raise UnknownComponent(f"component {self.component_id} is stopping")
        attempt = current_attempt()
        if attempt is None:
            return self._call(interface, func, args)
        return self._nested(attempt, interface, func, args)

    def _nested(self, attempt: Attempt, interface: str, name: str, args: tuple[Any, ...]) -> Any:
        """A linked call inside an attempt: on an idle instance, under what is left of
        the attempt's budget, the instance put back only when the attempt stands."""
        instance = self._take_idle(False)
        if instance is None:
            # Instantiating runs guest start code under the full deadline: not here.
            attempt.refused = f"a linked component ({self.component_id}) with no idle instance"
            raise Abandoned(attempt.refused)
        left = max(1, attempt.ends - self.engine.epoch)
        budget_is_deadline = self._deadline_ticks <= left
        set_epoch_deadline(instance.context, min(self._deadline_ticks, left))
        try:
            result = instance.func(interface, name)(instance.store, *args)
        except Exception as exc:
            instance.discard()
            if attempt.refused is None and _interrupted(exc) and not budget_is_deadline:
                attempt.refused = "more time than an attempt has"
            if attempt.refused is not None:
                raise Abandoned(attempt.refused) from None  # the caller traps on it
            self.invocations += 1
            self.failures += 1
            raise self._translate(exc, f"{interface}#{name}") from exc
        self.invocations += 1
        attempt.held.append((self._put_back, (instance, result, None)))
        attempt.dropped.append(instance.discard)
        return result

    def _take(self, fresh: bool = False) -> _Instance:
        found = self._take_idle(fresh)
        return found if found is not None else self._instantiate()

    def _take_idle(self, fresh: bool) -> _Instance | None:
        with self._lock:
            if fresh:  # an idle instance that never ran a call is as good as a new one
                for i, idle in enumerate(self._idle):
                    if idle.calls == 0:
                        return self._idle.pop(i)
            elif self._idle:
                return self._idle.pop()
        return None

    def _instantiate(self) -> _Instance:
        store = wasmtime.Store(self.engine.engine)
        store.set_limits(memory_size=self.limits.memory_bytes)
        # Instantiation runs guest start code too: it gets the same deadline.
        store.set_epoch_deadline(self._deadline_ticks)
        try:
            with self._instantiate_lock:
                instance = self.linker.instantiate(store, self.component)
        except Exception as exc:
            raise self._translate(exc, "instantiation") from exc
        made = _Instance(store, instance)
        if self._forget_store is not None:
            # However the instance goes (failed, not reused, trimmed, closed).
            made.forget = weakref.finalize(made, self._forget_store, store_key(store))
        return made

    def _call(
        self,
        interface: str,
        name: str,
        args: tuple[Any, ...],
        fresh: bool = False,
        info: CallInfo | None = None,
        keep: Callable[[], bool] | None = None,
    ) -> Any:
        self.invocations += 1
        instance = self._take(fresh)
        if info is not None:
            info.reused = instance.calls > 0
        set_epoch_deadline(instance.context, self._deadline_ticks)
        try:
            # No post_return: since wasmtime 42 the call runs the guest's post-return
            # itself and Func.post_return is a no-op (one GIL release fewer per call).
            result = instance.func(interface, name)(instance.store, *args)
        except Exception as exc:
            self.failures += 1
            # The instance is dropped here: its state after a failure is unknown.
            instance.discard()
            raise self._translate(exc, f"{interface}#{name}") from exc
        return self._put_back(instance, result, keep)

    def _attempt(
        self,
        instance: _Instance,
        interface: str,
        name: str,
        args: tuple[Any, ...],
        info: CallInfo | None,
        keep: Callable[[], bool] | None,
    ) -> Any:
        """The call on the event loop's thread, under a budget of a few epoch ticks."""
        if info is not None:
            info.reused = instance.calls > 0
        ticks = self._deadline_ticks
        # A deadline shorter than the budget is the call's own: running out is final.
        budget_is_deadline = ticks <= ATTEMPT_TICKS
        budget = min(ticks, ATTEMPT_TICKS)
        set_epoch_deadline(instance.context, budget)
        attempt = Attempt(ends=self.engine.epoch + budget)
        started = 0.0
        try:
            call = instance.func(interface, name)  # its converters are built on first use
            # CPU time, not wall time: a thread preempted on a busy machine is not slow.
            started = time.thread_time()
            with attempt:
                result = call(instance.store, *args)
        except Exception as exc:
            # The instance is dropped either way: a trap can leave its memory in any state.
            instance.discard()
            if attempt.refused is not None or (_interrupted(exc) and not budget_is_deadline):
                attempt.give_up()
                self.inline.gave_up()
                raise Abandoned(attempt.refused or "more time than an attempt has") from exc
            self.inline.stood(time.thread_time() - started)
            attempt.run_held()  # a failure for good: what it logged happened
            self.invocations += 1
            self.failures += 1
            raise self._translate(exc, f"{interface}#{name}") from exc
        self.inline.stood(time.thread_time() - started)
        attempt.run_held()
        self.invocations += 1
        return self._put_back(instance, result, keep)

    def _put_back(self, instance: _Instance, result: Any, keep: Callable[[], bool] | None) -> Any:
        """After a call that returned: the instance is idle again, unless it must go."""
        instance.calls += 1
        if not self.reuse or (keep is not None and not keep()):
            return result
        with self._lock:
            if len(self._idle) < self.limits.max_concurrency:
                self._idle.append(instance)
        return result

    def _translate(self, exc: Exception, what: str) -> CallError:
        who = f"component {self.component_id} ({what})"
        if isinstance(exc, CallError | UnknownComponent):
            return exc if isinstance(exc, CallError) else ComponentTrapped(str(exc))
        text = str(exc)
        if isinstance(exc, wasmtime.WasmtimeError | wasmtime.Trap):
            if _interrupted(exc):
                return DeadlineExceeded(
                    f"{who} ran past its {self.limits.deadline_s} s deadline and was stopped"
                )
            if "fuel allocated for hostcalls" in text:
                return ResourceLimitExceeded(
                    f"{who} passed the host more data in one call than wasmtime copies "
                    f"out of a guest (a list<u8> of at most {MAX_BYTES_OUT_OF_GUEST} bytes)"
                )
            if "exceeds memory limits" in text or "memory limit" in text:
                return ResourceLimitExceeded(
                    f"{who} exceeded its {self.limits.memory_bytes // 2**20} MiB memory cap"
                )
            log.info("%s trapped: %s", who, trap_reason(exc))
            return ComponentTrapped(f"{who} trapped: {trap_reason(exc)}")
        log.warning("%s failed in a host call: %r", who, exc)
        return ComponentTrapped(f"{who} failed in a host call: {type(exc).__name__}: {exc}")


def _interrupted(exc: Exception) -> bool:
    """The guest was stopped by its epoch deadline."""
    return isinstance(exc, wasmtime.WasmtimeError | wasmtime.Trap) and "interrupt" in str(exc)
