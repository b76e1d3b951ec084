"""The host runtime: start, scale, call and stop components on this node.

``HostRuntime`` ties the pieces together: it fetches and compiles a component
(``host.runtime.engine``), checks that its links grant every import and builds its
linker (``host.runtime.bindings``), and keeps an instance pool (``host.runtime.pool``). The
http-server provider reaches components through ``handle_http``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.kinds import KEYVALUE
from host.errors import (
    ComponentTrapped,
    DeadlineExceeded,
    HostError,
    LinkError,
    Overloaded,
    ResourceLimitExceeded,
    UnknownComponent,
)
from host.runtime.bindings import (
    Grants,
    KeyValueGrant,
    build_linker,
    exported_interfaces,
    interface_functions,
    new_wasi_config,
)
from host.runtime.engine import WasmEngine
from host.runtime.loader import fetch_component
from host.runtime.pool import InstancePool, Limits
from lattice import tracing
from providers import contracts
from providers.config_provider import ComponentConfig
from providers.http_server import HandlerError, HttpRequest, HttpResponse
from providers.keyvalue import KeyValueBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinkSpec:
    """Binds the component's imports of ``provider``'s interfaces, with link config."""

    provider: str  # a built-in kind: keyvalue (logging and config are always granted)
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
    # Exported interface name -> its functions' types (for the wire codec).
    export_functions: dict[str, dict[str, Any]] = field(default_factory=dict)

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


class HostRuntime:
    """Runs components for one host; owns the engine and the provider backends."""

    def __init__(
        self,
        cache_dir: Path | None,
        keyvalue_backends: Mapping[str, KeyValueBackend] | None = None,
        default_keyvalue_backend: str = "nats",
    ) -> None:
        self.engine = WasmEngine(cache_dir)
        self.keyvalue_backends = dict(keyvalue_backends or {})
        self.default_keyvalue_backend = default_keyvalue_backend
        self.components: dict[str, RunningComponent] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        self.remote: RemoteInvoker | None = None
        self.host_id = "local"  # names this host in traces and metrics

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
            started = time.monotonic()
            wasm = await fetch_component(spec.source, spec.sha256)
            digest = hashlib.sha256(wasm).hexdigest()
            compiled = await asyncio.to_thread(self.engine.compile, wasm, spec.source, digest)
            grants = self._grants(spec)
            linker = build_linker(self.engine.engine, compiled, grants)
            pool = InstancePool(
                spec.component_id,
                self.engine,
                compiled,
                linker,
                lambda: new_wasi_config(spec.component_id),
                spec.limits,
            )
            await pool.warm(spec.replicas)
            running = RunningComponent(
                spec,
                digest,
                pool,
                exported_interfaces(self.engine.engine, compiled),
                time.time(),
                export_functions(self.engine.engine, compiled),
            )
            # Swap only once the new one works: a bad update leaves the old one serving.
            self.components[spec.component_id] = running
            if current is not None:
                await current.pool.close()
            log.info(
                "started component %s from %s in %.0f ms",
                spec.component_id,
                spec.source,
                (time.monotonic() - started) * 1000,
            )
            return running

    def _grants(self, spec: ComponentSpec) -> Grants:
        grants = Grants(
            component_id=spec.component_id,
            loop=asyncio.get_running_loop(),
            config=ComponentConfig(spec.config),
            component_links=dict(spec.component_links),
            invoke=self.invoke_sync,
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
            elif link.provider not in contracts.PROVIDER_INTERFACES:
                raise LinkError(spec.component_id, [f"unknown provider {link.provider!r}"])
        return grants

    async def scale(
        self, component_id: str, limits: Limits, replicas: int | None = None
    ) -> RunningComponent:
        """Change limits and warm replicas in place, keeping instances and in-flight calls."""
        running = self.get(component_id)
        running.pool.resize(limits)
        replicas = running.spec.replicas if replicas is None else replicas
        running.spec = dataclasses.replace(running.spec, limits=limits, replicas=replicas)
        await running.pool.warm(replicas)
        return running

    async def stop(self, component_id: str, drain_timeout_s: float = 10.0) -> None:
        running = self.components.pop(component_id, None)
        if running is None:
            raise UnknownComponent(f"no component {component_id!r} runs on this host")
        await running.pool.close(drain_timeout_s)

    async def close(self) -> None:
        """Stop every component (draining in-flight calls) and the engine; idempotent."""
        for component_id in list(self.components):
            await self.stop(component_id)
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
        """A linked component's call, on the caller's worker thread.

        In-process when ``target`` runs here (nearly a function call: the values
        wasmtime-py lifted from the caller are lowered straight into the callee),
        otherwise over the lattice through ``self.remote``.
        """
        running = self.components.get(target)
        if running is not None:
            with tracing.component_call(target, func, self.host_id):
                return running.pool.call_sync(running.export_named(interface), func, args)
        if self.remote is None:
            raise UnknownComponent(f"component {target} does not run on this host")
        return self.remote(target, interface, func, args, func_type)

    async def call(self, component_id: str, interface: str, func: str, *args: Any) -> Any:
        pool = self.get(component_id).pool
        with tracing.component_call(component_id, func, self.host_id):
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
