"""The host runtime: start, scale, call and stop components on this node.

``HostRuntime`` ties the pieces together: it fetches and compiles a component
(``host.runtime.loader``, ``host.runtime.engine``), checks that its links grant every
import and builds its linker (``host.runtime.bindings``), and keeps an instance pool
(``host.runtime.pool``). The http-server provider reaches components through
``handle_http`` (the whole-request ``wasmlattice:http`` contract) or
``http_exchange`` (a streamed exchange with a ``wasi:http/incoming-handler``
export, served through the host's own WASI, ``host.runtime.wasi``).

Starts are bounded, since whoever can send ``component.scale`` drives them:
sources are read only from the artifact dirs (``LoadPolicy``); reads and
compiles run on the runtime's own few threads, never the loop's default
executor; concurrent starts of one digest share one compile; a pool's
concurrency and the host's worker threads have caps (``HostLimits``), and a
request over one is refused, not clamped. A start that fails releases what it
took: its pool, its threads, its share of the thread budget.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.kinds import HTTP_CLIENT, KEYVALUE
from host.errors import (
    ComponentTrapped,
    DeadlineExceeded,
    HostError,
    LimitRefused,
    LinkError,
    Overloaded,
    ResourceLimitExceeded,
    UnknownComponent,
)
from host.runtime import inline
from host.runtime.bindings import (
    Grants,
    KeyValueGrant,
    exported_interfaces,
    granted_environment,
    interface_functions,
    link_component,
)
from host.runtime.engine import WasmEngine
from host.runtime.inline import Abandoned
from host.runtime.loader import LoadPolicy, fetch_component
from host.runtime.pool import HostLimits, InstancePool, Limits
from host.runtime.wasi import HttpClientGrant, WasiHost
from host.runtime.wasi.reuse import instance_reuse
from host.runtime.wasi.serve import ExchangeTarget, serve_exchange
from lattice import tracing
from lattice.redact import redacted
from providers import contracts
from providers.config_provider import ComponentConfig
from providers.http_client import HttpClient, HttpClientPolicy
from providers.http_server import (
    HandlerError,
    HttpRequest,
    HttpResponse,
    ResponseSink,
    StreamedRequest,
    StreamHandler,
)
from providers.keyvalue import KeyValueBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkSpec:
    """Binds the component's imports of ``provider``'s interfaces, with link config."""

    provider: str  # a built-in kind: keyvalue, http-client (logging, config: always granted)
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ComponentSpec:
    component_id: str
    source: str
    sha256: str | None = None
    limits: Limits = field(default_factory=Limits)
    replicas: int = 1
    config: Mapping[str, str] = field(default_factory=dict)
    links: tuple[LinkSpec, ...] = ()
    # (unversioned interface, target component id): imports served by other components.
    component_links: tuple[tuple[str, str], ...] = ()


@dataclass
class RunningComponent:
    spec: ComponentSpec
    digest: str
    pool: InstancePool
    exports: list[str]
    started_at: float
    # The host's own WASI, which the component's instances are bound to.
    wasi: WasiHost
    # Exported interface name -> its functions' types (for the wire codec).
    export_functions: dict[str, dict[str, Any]] = field(default_factory=dict)

    # Cached: asked on every HTTP request, and the exports are fixed once started.
    @functools.cached_property
    def wasi_http_handler(self) -> str | None:
        """The exported ``wasi:http/incoming-handler`` (with its version), if any."""
        return wasi_http_export(self.exports)

    @property
    def component_id(self) -> str:
        return self.spec.component_id

    def export_named(self, interface: str) -> str:
        """The exported name (with version) of an unversioned or versioned interface."""
        wanted = contracts.unversioned(interface)
        for name in self.exports:
            if contracts.unversioned(name) == wanted:
                return name
        raise UnknownComponent(f"component {self.component_id} does not export {interface}")


# remote(target, imported interface, function, args, function type) -> result, from a
# worker thread: how a call reaches a component that does not run on this host.
RemoteInvoker = Callable[[str, str, str, tuple[Any, ...], Any], Any]


def export_functions(engine: Any, compiled: Any) -> dict[str, dict[str, Any]]:
    """Function types of every exported interface, read once at start."""
    found = {}
    for name, extern in compiled.type.exports(engine).items():
        try:
            found[name] = interface_functions(engine, extern, name)
        except LinkError:
            continue  # exports with resources are not callable across components
    return found


def wasi_http_export(exports: list[str]) -> str | None:
    """The ``wasi:http/incoming-handler`` among a component's exports (with its version)."""
    wanted = contracts.unversioned(contracts.WASI_HTTP_INCOMING)
    return next((name for name in exports if contracts.unversioned(name) == wanted), None)


class HostRuntime:
    """Runs components for one host; owns the engine and the provider backends."""

    def __init__(
        self,
        cache_dir: Path | None,
        keyvalue_backends: Mapping[str, KeyValueBackend] | None = None,
        default_keyvalue_backend: str = "nats",
        *,
        remote: RemoteInvoker | None = None,
        close_remote: Callable[[], None] | None = None,
        host_id: str = "local",
        load_policy: LoadPolicy | None = None,
        limits: HostLimits | None = None,
    ) -> None:
        self.engine = WasmEngine(cache_dir)
        self.keyvalue_backends = dict(keyvalue_backends or {})
        self.default_keyvalue_backend = default_keyvalue_backend
        self.load_policy = load_policy or LoadPolicy.of()
        self.limits = limits or HostLimits()
        self.components: dict[str, RunningComponent] = {}
        # Outgoing wasi:http of every component (each under its own link's policy).
        self.http_client = HttpClient()
        self._starting: dict[str, asyncio.Lock] = {}
        # How calls reach linked components on other hosts (None: only this host's),
        # and what closes its connections once the components are stopped.
        self.remote = remote
        self._close_remote = close_remote
        self.host_id = host_id  # names this host in traces and metrics
        # File reads and compiles: a few threads of our own, so a slow load never
        # takes the threads of the loop's default executor (DNS, other to_thread work).
        self._load_threads = ThreadPoolExecutor(
            self.limits.concurrent_loads, thread_name_prefix="component-load"
        )
        # Fetches at once: bounds the memory held by fetched bytes too.
        self._load_slots = asyncio.Semaphore(self.limits.concurrent_loads)
        self._compiling: dict[str, asyncio.Future[Any]] = {}
        # Worker threads each component's pool may start (its max_concurrency).
        self._thread_budget: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------

    async def start(self, spec: ComponentSpec) -> RunningComponent:
        """Start (or replace) a component; errors name what is wrong and change nothing."""
        lock = self._starting.setdefault(spec.component_id, asyncio.Lock())
        async with lock:
            current = self.components.get(spec.component_id)
            if current is not None and current.spec == spec:
                return current
            if current is not None and spec == dataclasses.replace(
                current.spec, limits=spec.limits, replicas=spec.replicas
            ):
                # Only the scale changed: keep instances and in-flight calls.
                return await self.scale(spec.component_id, spec.limits, spec.replicas)
            self.limits.check(spec.component_id, spec.limits)
            previous = self._thread_budget.get(spec.component_id)
            self._reserve_threads(spec.component_id, spec.limits.max_concurrency)
            try:
                running = await self._start_new(spec)
            except BaseException:
                self._restore_threads(spec.component_id, previous)
                raise
            # Swap only once the new one works: a bad update leaves the old one serving.
            self.components[spec.component_id] = running
            if current is not None:
                await current.pool.close(join_timeout_s=self.limits.join_timeout_s)
            return running

    async def _start_new(self, spec: ComponentSpec) -> RunningComponent:
        started = time.monotonic()
        async with self._load_slots:
            wasm = await fetch_component(
                spec.source, spec.sha256, self.load_policy, self._load_threads
            )
            digest = hashlib.sha256(wasm).hexdigest()
            compiled = await self._compile(wasm, spec.source, digest)
        reuse = self._reuse(spec, wasm)
        del wasm  # the compiled component is all that is needed from here on
        grants = self._grants(spec)
        linked = link_component(self.engine.engine, compiled, grants)
        exports = exported_interfaces(self.engine.engine, compiled)
        pool = InstancePool(
            spec.component_id,
            self.engine,
            compiled,
            linked.linker,
            spec.limits,
            # A wasi:http component may keep per-request state (StarlingMonkey's do).
            reuse=reuse or wasi_http_export(exports) is None,
            forget_store=linked.wasi.table.forget_store,
            # Every host call of the host's own WASI and bindings can refuse to run
            # on the event loop's thread: calls are tried there first.
            inline=True,
        )
        try:
            await pool.warm(spec.replicas)
            running = RunningComponent(
                spec,
                digest,
                pool,
                exports,
                time.time(),
                linked.wasi,
                export_functions(self.engine.engine, compiled),
            )
        except BaseException:
            # Shielded: a cancelled start still frees its threads and instances.
            await asyncio.shield(pool.close(0, self.limits.join_timeout_s))
            raise
        log.info(
            "started component %s from %s in %.0f ms",
            spec.component_id,
            redacted(spec.source),
            (time.monotonic() - started) * 1000,
        )
        return running

    async def _compile(self, wasm: bytes, source: str, digest: str) -> Any:
        """Compile on a load thread; concurrent starts of one digest share the compile."""
        pending = self._compiling.get(digest)
        if pending is None:
            loop = asyncio.get_running_loop()
            shown = redacted(source)
            pending = loop.run_in_executor(
                self._load_threads, self.engine.compile, wasm, shown, digest
            )
            self._compiling[digest] = pending
            pending.add_done_callback(lambda done: self._compiled(digest, done))
        # Shielded: one waiter cancelled does not cancel the compile the others await.
        return await asyncio.shield(pending)

    def _compiled(self, digest: str, done: asyncio.Future[Any]) -> None:
        self._compiling.pop(digest, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have been cancelled

    @staticmethod
    def _reuse(spec: ComponentSpec, wasm: bytes) -> bool:
        """Whether a wasi:http component's instances serve many requests (wasi.reuse)."""
        try:
            return instance_reuse(spec.config, wasm)
        except ValueError as exc:
            raise LimitRefused(f"component {spec.component_id}: {exc}") from None

    def _reserve_threads(self, component_id: str, threads: int) -> None:
        """Count ``threads`` for the component, or refuse if the host would go over its cap."""
        others = sum(n for cid, n in self._thread_budget.items() if cid != component_id)
        if others + threads > self.limits.max_threads:
            raise LimitRefused(
                f"component {component_id}: {threads} more worker threads would bring this "
                f"host to {others + threads}, over its cap of {self.limits.max_threads}"
            )
        self._thread_budget[component_id] = threads

    def _restore_threads(self, component_id: str, previous: int | None) -> None:
        if previous is None:
            self._thread_budget.pop(component_id, None)
        else:
            self._thread_budget[component_id] = previous

    def _grants(self, spec: ComponentSpec) -> Grants:
        grants = Grants(
            component_id=spec.component_id,
            loop=asyncio.get_running_loop(),
            config=ComponentConfig(spec.config),
            component_links=dict(spec.component_links),
            invoke=self.invoke_sync,
            environment=granted_environment(spec.config),
            deadline_s=spec.limits.deadline_s,
        )
        for link in spec.links:
            if link.provider == KEYVALUE:
                backend_name = link.config.get("backend", self.default_keyvalue_backend)
                backend = self.keyvalue_backends.get(backend_name)
                if backend is None:
                    raise LinkError(
                        spec.component_id,
                        [f"{contracts.KEYVALUE_STORE} (no keyvalue backend {backend_name!r})"],
                    )
                grants.keyvalue = KeyValueGrant(backend, dict(link.config))
            elif link.provider == HTTP_CLIENT:
                try:
                    policy = HttpClientPolicy.from_config(link.config)
                except ValueError as exc:
                    raise LinkError(spec.component_id, [f"{HTTP_CLIENT} link: {exc}"]) from None
                grants.http_client = HttpClientGrant(self.http_client, policy)
            elif link.provider not in contracts.PROVIDER_INTERFACES:
                raise LinkError(spec.component_id, [f"unknown provider {link.provider!r}"])
        return grants

    async def scale(
        self, component_id: str, limits: Limits, replicas: int | None = None
    ) -> RunningComponent:
        """Change limits and warm replicas in place, keeping instances and in-flight calls."""
        running = self.get(component_id)
        self.limits.check(component_id, limits)
        self._reserve_threads(component_id, limits.max_concurrency)
        running.pool.resize(limits)
        replicas = running.spec.replicas if replicas is None else replicas
        running.spec = dataclasses.replace(running.spec, limits=limits, replicas=replicas)
        await running.pool.warm(replicas)
        return running

    async def stop(self, component_id: str, drain_timeout_s: float = 10.0) -> None:
        running = self.components.pop(component_id, None)
        if running is None:
            raise UnknownComponent(f"no component {component_id!r} runs on this host")
        self._thread_budget.pop(component_id, None)
        await running.pool.close(drain_timeout_s, self.limits.join_timeout_s)

    async def close(self) -> None:
        """Stop every component (draining in-flight calls) and the engine; idempotent."""
        for component_id in list(self.components):
            await self.stop(component_id)
        self._load_threads.shutdown(wait=False, cancel_futures=True)
        await self.http_client.close()
        if self._close_remote is not None:
            self._close_remote()
        self.engine.close()

    def get(self, component_id: str) -> RunningComponent:
        running = self.components.get(component_id)
        if running is None:
            raise UnknownComponent(f"no component {component_id!r} runs on this host")
        return running

    # -- calls -------------------------------------------------------------

    def invoke_sync(
        self, target: str, interface: str, func: str, args: tuple[Any, ...], func_type: Any
    ) -> Any:
        """A linked component's call, on the caller's thread.

        In-process when ``target`` runs here (nearly a function call: the values
        wasmtime-py lifted from the caller are lowered straight into the callee),
        otherwise over the lattice through ``self.remote``.
        """
        running = self.components.get(target)
        if running is not None:
            export = running.export_named(interface)
            if inline.current() is not None and tracing.observing():
                return self._linked_in_attempt(running, target, export, func, args)
            # Inside an attempt on the loop's thread, the call is part of it (pool.call_sync).
            with tracing.component_call(target, func, self.host_id):
                return running.pool.call_sync(export, func, args)
        if self.remote is None:
            raise UnknownComponent(f"component {target} does not run on this host")
        inline.refuse("a linked component on another host")
        return self.remote(target, interface, func, args, func_type)

    def _linked_in_attempt(
        self, running: RunningComponent, target: str, export: str, func: str, args: tuple[Any, ...]
    ) -> Any:
        """A linked call inside an attempt: its span and metrics are held with the attempt's
        log lines. Given up, the attempt runs again on a worker, and this call with it: it
        is recorded once, and a refusal is not an error."""
        started_ns, started = time.time_ns(), time.perf_counter()

        def record(error: str | None) -> None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            inline.hold(tracing.record_component_call, target, func, self.host_id,
                        started_ns, elapsed_ms, error)  # fmt: skip

        try:
            result = running.pool.call_sync(export, func, args)
        except Abandoned:
            raise  # the attempt is given up, and this call runs again with it
        except Exception as exc:
            record(type(exc).__name__)
            raise
        record(None)
        return result

    async def call(self, component_id: str, interface: str, func: str, *args: Any) -> Any:
        pool = self.get(component_id).pool
        with tracing.component_call(component_id, func, self.host_id):
            try:
                return await pool.call(interface, func, *args, inline=True)
            except Abandoned:  # given up on the loop's thread, with nothing done: again
                return await pool.call(interface, func, *args)

    async def handle_http(self, component_id: str, request: HttpRequest) -> HttpResponse:
        """The http-server provider's invoker: host errors become HTTP statuses."""
        try:
            result = await self.call(component_id, contracts.HTTP_HANDLER, "handle", request)
        except DeadlineExceeded as exc:
            raise HandlerError(504, "the component did not answer in time", str(exc)) from exc
        except (Overloaded, UnknownComponent) as exc:
            raise HandlerError(503, "the component is unavailable", str(exc)) from exc
        except (ComponentTrapped, ResourceLimitExceeded, HostError) as exc:
            raise HandlerError(500, "the component failed", str(exc)) from exc
        return HttpResponse(
            status=result.status, headers=list(result.headers), body=bytes(result.body)
        )

    def http_exchange(self, component_id: str) -> StreamHandler | None:
        """The streamed handler of a ``wasi:http`` component (None: not one, or not here)."""
        running = self.components.get(component_id)
        if running is None or running.wasi_http_handler is None:
            return None
        return functools.partial(self._serve_exchange, running)

    async def _serve_exchange(
        self, running: RunningComponent, request: StreamedRequest, sink: ResponseSink
    ) -> None:
        """One request to a ``wasi:http/incoming-handler``; failures become HandlerError."""
        wasi, export = running.wasi, running.wasi_http_handler
        assert export is not None
        target = ExchangeTarget(
            running.component_id, wasi, running.pool, export, running.spec.limits.deadline_s
        )
        with tracing.component_call(running.component_id, "handle", self.host_id):
            await serve_exchange(target, request, sink)
