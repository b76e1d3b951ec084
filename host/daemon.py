"""The host daemon: one node's runtime, built-in providers and its place on the lattice.

A daemon connects to NATS, serves the control interface for its host id
(``host.control``), answers pings, publishes a heartbeat with its inventory
every ``heartbeat_s``, and re-binds its components when the links or named
config they use change. Links and named config live in JetStream KV, so a
restarted host re-reads them; which components a host runs is the
controller's business (a restarted host gets its replicas back from it).

``run()`` serves until ``shutdown()``. Shutdown is idempotent and graceful:
stop taking new work (control and HTTP), let in-flight calls finish, say
``host_stopped``, then close the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.control import ControlInterface, component_key
from host.errors import UnknownComponent
from host.identity import friendly_name, host_labels, stable_host_id
from host.keyed_locks import KeyedLocks
from host.runtime.components import ComponentSpec, HostRuntime, LinkSpec
from host.runtime.pool import Limits
from host.supervisor import ProviderSupervisor
from host.wire.codec import WireCodec
from lattice import tracing
from lattice.auth import bound_host_id
from lattice.connection import Connection, NatsOptions, connect
from lattice.errors import LatticeError
from lattice.invoke import invoke, serve_component
from lattice.kv import BucketCache
from lattice.messages import (
    ComponentDescription,
    Event,
    HostInventory,
    Link,
    ScaleComponent,
    decode,
    encode,
)
from lattice.responder import Responder
from lattice.rpc import serve
from lattice.state import LatticeState
from lattice.subjects import Subjects
from providers import contracts
from providers.config_provider import merge_config
from providers.contracts import unversioned
from providers.http_server import HttpServer, Route
from providers.keyvalue import KeyValueBackend, MemoryKeyValue, NatsKeyValue
from providers.remote import bind_remote_keyvalue

log = logging.getLogger(__name__)

VERSION = "0.1.0"
HTTP_SERVER_SOURCE = "http-server"
# Instances are created lazily up to this many concurrent calls per component.
DEFAULT_MAX_CONCURRENCY = 4
# Calls from other hosts handled at once per exported interface; beyond the
# component's own limit they wait in its instance pool, under its deadline.
REMOTE_CALL_CONCURRENCY = 64
# Control requests handled at once (ordered per key: host.control._ordering_key).
CONTROL_CONCURRENCY = 16
STATE_EVENTS = ("link_set", "link_deleted", "config_set", "config_deleted")


@dataclass
class HostConfig:
    nats: NatsOptions = field(default_factory=NatsOptions)
    subjects: Subjects = field(default_factory=Subjects)
    state_dir: Path = Path(".state")
    host_id: str | None = None
    labels: list[str] = field(default_factory=list)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    max_body_bytes: int = 4 * 2**20
    heartbeat_s: float = 1.0
    call_timeout_s: float = 10.0


class HostDaemon:
    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.subjects = config.subjects
        self.host_id = bound_host_id(
            config.nats.credentials_file, config.host_id
        ) or stable_host_id(config.state_dir, config.host_id, str(config.http_port))
        self.friendly_name = friendly_name(self.host_id)
        self.labels = host_labels(config.labels)
        self.nc: Connection | None = None
        self.runtime: HostRuntime | None = None
        self.http: HttpServer | None = None
        self.state: LatticeState | None = None
        self.desired: dict[str, ScaleComponent] = {}
        self.started_at = time.time()
        self.draining = False
        self.serving = False
        self._responders: list[Responder] = []
        # component id -> responders serving its exports to other hosts
        self._served: dict[str, list[Responder]] = {}
        # Control requests run side by side, but in arrival order per component,
        # provider or kind of change (see host.keyed_locks); re-binds take the
        # component's key too.
        self.ordered = KeyedLocks()
        self._codecs: dict[int, tuple[Any, WireCodec]] = {}
        self._stop_requested = asyncio.Event()
        # Out-of-process providers this host runs (created in start()).
        self.supervisor: ProviderSupervisor | None = None
        # Run first at shutdown, while the NATS connection is still up (e.g. an
        # in-process controller that `lattice up` runs beside the host).
        self.before_shutdown: list[Callable[[], Awaitable[None]]] = []
        self._drain_timeout_s = 10.0
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.nc = nc = await connect(self.config.nats)
        self.state = LatticeState(nc, self.subjects, self.host_id)
        backends: dict[str, KeyValueBackend] = {
            "nats": NatsKeyValue(BucketCache(nc)),
            "memory": MemoryKeyValue(),
        }
        self.runtime = HostRuntime(self.config.state_dir / "compile-cache", backends)
        self.runtime.remote = self._remote_invoke
        self.runtime.host_id = self.host_id
        self.http = HttpServer(
            self.runtime.handle_http,
            self.config.http_host,
            self.config.http_port,
            self.config.max_body_bytes,
        )
        self.http.host_id = self.host_id
        await self.http.start()
        self.supervisor = ProviderSupervisor(
            nc,
            self.subjects,
            self.config.nats,
            self.host_id,
            self.config.state_dir / "providers",
            self.publish,
        )
        control = ControlInterface(self)
        self._responders = [
            await serve(
                nc,
                self.subjects.host_control_all(self.host_id),
                control.handle,
                concurrency=CONTROL_CONCURRENCY,
            ),
            await serve(nc, self.subjects.ping, control.ping),
        ]
        for event_type in STATE_EVENTS:
            self._responders.append(
                await Responder.start(nc, self.subjects.events(event_type), self._on_state_event)
            )
        await self.publish("host_started", self.inventory().model_dump(mode="json"))
        log.info(
            "host %s (%s) is on lattice %s", self.host_id, self.friendly_name, self.subjects.lattice
        )

    async def run(self) -> None:
        """Serve until ``request_stop()``; then shut down. The heartbeat is a named task."""
        self.serving = True
        async with asyncio.TaskGroup() as tasks:
            heartbeat = tasks.create_task(self._heartbeat(), name=f"heartbeat-{self.host_id}")
            await self._stop_requested.wait()
            heartbeat.cancel()
        await self.shutdown(self._drain_timeout_s)

    def request_stop(self, drain_timeout_s: float = 10.0) -> None:
        """Ask ``run()`` to shut down gracefully; safe from signal handlers."""
        self._drain_timeout_s = drain_timeout_s
        self._stop_requested.set()

    async def shutdown(self, drain_timeout_s: float = 10.0) -> None:
        """Stop taking work, finish in-flight calls, announce, disconnect; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.supervisor is not None:
            # Providers first, always: a host never leaves provider processes behind.
            await self.supervisor.close()
        self.draining = True
        for hook in self.before_shutdown:
            try:
                await hook()
            except Exception as exc:
                log.warning("shutdown hook failed: %s", exc)
        await _bounded(self._stop_responding(), "unsubscribing", timeout_s=6.0)
        if self.http is not None:
            await self.http.stop()
        if self.runtime is not None:
            for component_id in list(self.runtime.components):
                await self.runtime.stop(component_id, drain_timeout_s)
            await self.runtime.close()
        if self.nc is not None and not self.nc.is_closed:
            await self.publish("host_stopped", {"host_id": self.host_id})
            # With the server gone, drain would wait for a reconnect forever: bound it.
            if not await _bounded(self.nc.drain(), "draining the NATS connection"):
                await _bounded(self.nc.close(), "closing the NATS connection")
        self._stop_requested.set()

    async def _stop_responding(self) -> None:
        """Take no more requests; those in flight get a grace period (then are cancelled)."""
        responders = [*self._responders, *(r for rs in self._served.values() for r in rs)]
        self._responders = []
        self._served.clear()
        await asyncio.gather(*(responder.close() for responder in responders))

    # -- lattice -----------------------------------------------------------

    async def publish(self, event_type: str, data: dict[str, Any]) -> None:
        if self.nc is None or self.nc.is_closed:
            return
        event = Event(type=event_type, source=self.host_id, data=data)
        try:
            await self.nc.publish(self.subjects.event(event_type, self.host_id), encode(event))
        except Exception as exc:
            log.warning("could not publish %s: %s", event_type, exc)

    async def _heartbeat(self) -> None:
        while not self._stop_requested.is_set():
            await self.publish("host_heartbeat", self.inventory().model_dump(mode="json"))
            await asyncio.sleep(self.config.heartbeat_s)

    def inventory(self) -> HostInventory:
        components = []
        if self.runtime is not None:
            for running in self.runtime.components.values():
                pool = running.pool
                request = self.desired.get(running.component_id)
                components.append(
                    ComponentDescription(
                        component_id=running.component_id,
                        source=running.spec.source,
                        digest=running.digest,
                        count=running.spec.replicas,
                        max_concurrency=pool.limits.max_concurrency,
                        active=pool.active,
                        invocations=pool.invocations,
                        failures=pool.failures,
                        exports=running.exports,
                        annotations=request.annotations if request else {},
                    )
                )
        return HostInventory(
            host_id=self.host_id,
            friendly_name=self.friendly_name,
            labels=self.labels,
            version=VERSION,
            uptime_s=round(time.time() - self.started_at, 3),
            components=sorted(components, key=lambda c: c.component_id),
            http_url=self.http.url if self.http else None,
            draining=self.draining,
            providers=self.supervisor.describe() if self.supervisor else [],
        )

    async def _on_state_event(self, msg: Any) -> None:
        """A link or named config changed: re-apply the local components it touches."""
        try:
            event = decode(Event, msg.data)
        except LatticeError as exc:
            log.warning("ignoring bad state event: %s", exc)
            return
        affected = set()
        if event.type in ("link_set", "link_deleted"):
            affected = {str(event.data.get("source_id")), str(event.data.get("target"))}
        elif event.type in ("config_set", "config_deleted"):
            name = event.data.get("name")
            affected = {c for c, req in self.desired.items() if name in req.config_names}
        for component_id in sorted(affected):
            # In turn with control requests for the component, and reading what it
            # should run only then: a stop that came first is not undone.
            async with self.ordered.hold(component_key(component_id)):
                if self._closed:
                    return  # shutting down: nothing to re-bind, and NATS may be going away
                request = self.desired.get(component_id)
                if request is None:
                    continue
                try:
                    await self.apply(request)
                except Exception as exc:
                    log.warning("re-binding %s after %s failed: %s", component_id, event.type, exc)

    # -- calls between components across hosts ------------------------------------

    def _codec(self, func_type: Any) -> WireCodec:
        # Keyed by identity, and the type kept alongside: a freed type's id may be reused.
        cached = self._codecs.get(id(func_type))
        if cached is None or cached[0] is not func_type:
            cached = self._codecs[id(func_type)] = (func_type, WireCodec.for_func(func_type))
        return cached[1]

    def _remote_invoke(
        self, target: str, interface: str, func: str, args: tuple[Any, ...], func_type: Any
    ) -> Any:
        """A linked call to a component on another host (runs on a worker thread)."""
        assert self.nc is not None and self.runtime is not None
        codec = self._codec(func_type)
        payload = codec.encode_params(args)
        call = invoke(
            self.nc,
            self.subjects,
            target,
            unversioned(interface),
            func,
            payload,
            headers=tracing.inject_headers(),
            timeout_s=self.config.call_timeout_s,
        )
        future = asyncio.run_coroutine_threadsafe(call, self._loop)
        return codec.decode_result(future.result(self.config.call_timeout_s + 1))

    async def _serve_exports(self, component_id: str) -> None:
        """Let other hosts call this component's exported interfaces."""
        assert self.nc is not None and self.runtime is not None
        if component_id in self._served:
            return
        running = self.runtime.get(component_id)
        responders = []
        for export in running.exports:
            if export == contracts.HTTP_HANDLER:
                continue

            async def handle(
                func: str, body: bytes, headers: Mapping[str, str], export: str = export
            ) -> bytes:
                return await self._answer(component_id, export, func, body, headers)

            responders.append(
                await serve_component(
                    self.nc,
                    self.subjects,
                    component_id,
                    unversioned(export),
                    handle,
                    concurrency=REMOTE_CALL_CONCURRENCY,
                )
            )
        self._served[component_id] = responders

    async def _answer(
        self, component_id: str, export: str, func: str, body: bytes, headers: Mapping[str, str]
    ) -> bytes:
        assert self.runtime is not None
        running = self.runtime.get(component_id)
        func_type = running.export_functions.get(export, {}).get(func)
        if func_type is None:
            raise UnknownComponent(f"component {component_id} has no function {export}#{func}")
        codec = self._codec(func_type)
        with tracing.server_span(f"{component_id} {export}#{func}", headers, self.host_id):
            result = await self.runtime.call(component_id, export, func, *codec.decode_params(body))
        encoded: bytes = codec.encode_result(result)
        return encoded

    async def _stop_serving(self, component_id: str) -> None:
        for responder in self._served.pop(component_id, []):
            await responder.close()

    # -- components ----------------------------------------------------------

    async def apply(self, request: ScaleComponent) -> None:
        """Make this host run ``request.count`` replicas with the current links and config."""
        assert self.runtime is not None and self.state is not None and self.http is not None
        component_id = request.component_id
        if request.count == 0:
            self.desired.pop(component_id, None)
            self.http.routes.remove_component(component_id)
            await self._stop_serving(component_id)
            if component_id in self.runtime.components:
                await self.runtime.stop(component_id)
            return
        links, links_in = await self.state.links_of(component_id)
        routes = [
            Route(component_id, link.config.get("path", "/"), link.config.get("host") or None)
            for link in links_in
            if link.source_id == HTTP_SERVER_SOURCE
        ]
        config_layers = []
        for name in request.config_names:
            values = await self.state.get_config(name)
            if values is None:
                raise LookupError(f"named config {name!r} does not exist")
            config_layers.append(values)
        config_layers.append(request.config)
        spec = ComponentSpec(
            component_id=component_id,
            source=request.source,
            sha256=request.sha256,
            limits=Limits(
                max_concurrency=max(
                    request.count, request.max_concurrency or DEFAULT_MAX_CONCURRENCY
                ),
                deadline_s=request.deadline_s,
                memory_bytes=request.memory_mb * 2**20,
            ),
            replicas=request.count,
            config=merge_config(config_layers),
            links=tuple(
                self._link_spec(link)
                for link in links
                if link.target in contracts.PROVIDER_INTERFACES
            ),
            component_links=_component_links(links),
        )
        await self.runtime.start(spec)
        await self._serve_exports(component_id)
        self.desired[component_id] = request
        self.http.routes.remove_component(component_id)
        for route in routes:
            self.http.routes.add(route)

    def _link_spec(self, link: Link) -> LinkSpec:
        if link.target != "keyvalue":
            return LinkSpec(link.target, dict(link.config))
        assert self.runtime is not None and self.nc is not None
        # keyvalue config provider=X: calls go to out-of-process provider X (backend
        # provider:X, a RemoteKeyValue registered here), see providers/remote.py.
        config = bind_remote_keyvalue(
            dict(link.config), self.runtime.keyvalue_backends, self.nc, self.subjects
        )
        return LinkSpec(link.target, config)


async def _bounded(work: Awaitable[Any], what: str, timeout_s: float = 3.0) -> bool:
    """Await ``work`` for at most ``timeout_s``; False (logged) if it failed or timed out."""
    try:
        await asyncio.wait_for(work, timeout_s)
        return True
    except Exception as exc:  # shutdown goes on whatever NATS does
        log.warning("%s failed during shutdown: %s", what, str(exc) or type(exc).__name__)
        return False


def _component_links(links: list[Link]) -> tuple[tuple[str, str], ...]:
    """(interface, target component) for links whose target is another component."""
    pairs = []
    for link in links:
        if link.target in contracts.PROVIDER_INTERFACES or link.target == HTTP_SERVER_SOURCE:
            continue
        for interface in link.interfaces:
            pairs.append((f"{link.namespace}:{link.package}/{interface}", link.target))
    return tuple(sorted(pairs))
