"""The host daemon: one node's runtime, built-in providers and its place on the lattice.

A daemon connects to NATS, serves the control interface for its host id
(``host.control``), answers pings, publishes a heartbeat with its inventory
every ``heartbeat_s``, and re-binds its components when the links or named
config they use change. Links and named config live in JetStream KV, so a
restarted host re-reads them; which components a host runs is the
controller's business (a restarted host gets its replicas back from it).

``HostDaemon.start(config)`` builds a running daemon: it connects, builds the
runtime, the HTTP server and the provider supervisor, then the daemon, which
starts answering; if any step fails, what was built is closed again and the
error raised (``HttpUnavailable`` when the HTTP port is taken, say). Starts of
components and providers pass the host's policy first (``host.policy``), and
labels, components and providers stay within ``HostConfig.bounds``
(``host.bounds``), the heartbeat within the server's max payload.
With ``data_plane_processes`` N >= 2 the HTTP port is served by the daemon and
N - 1 more processes (``host.dataplane``), which every component start, scale,
route change and stop reaches too; N of 0 or 1 serves it from this process only.
``run()`` serves until ``request_stop()``. ``shutdown()`` is idempotent and
graceful: stop taking new work (control and HTTP), let in-flight calls finish,
say ``host_stopped``, then close the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host.bounds import (
    ENVELOPE_BYTES,
    HostBounds,
    check_count,
    check_label_put,
    check_labels,
    fit_inventory,
)
from host.component_request import plan_component
from host.control import ControlInterface, component_key
from host.dataplane.group import DataPlaneGroup
from host.dataplane.settings import (
    PlaneSettings,
    bind_remote_providers,
    build_http,
    build_runtime,
)
from host.errors import HttpUnavailable
from host.exports import ExportServer
from host.identity import friendly_name, host_labels, stable_host_id
from host.keyed_locks import KeyedLocks
from host.policy import DEFAULT_POLICY_TIMEOUT_S, PolicyGate, PolicyService, load_policy
from host.runtime.components import ComponentSpec, HostRuntime
from host.runtime.loader import DEFAULT_FETCH_TIMEOUT_S, DEFAULT_MAX_BYTES
from host.runtime.pool import HostLimits
from host.supervisor import ProviderSupervisor
from lattice import tracing
from lattice.auth import bound_host_id
from lattice.connection import Connection, NatsOptions, close_connection, connect
from lattice.errors import LatticeError
from lattice.events import (
    ConfigDeleted,
    ConfigSet,
    EventBase,
    HostHeartbeat,
    HostRef,
    HostStarted,
    HostStopped,
    LinkDeleted,
    LinkSet,
    decode_event,
    publish_event,
)
from lattice.messages import (
    ComponentDescription,
    HostInventory,
    ProviderDescription,
    ScaleComponent,
    StartProvider,
)
from lattice.redact import redacted
from lattice.responder import Responder
from lattice.rpc import serve
from lattice.secrets import SealingKey, open_values
from lattice.state import LatticeState
from lattice.subjects import Subjects, check_token
from providers.http_listeners import AddressListeners, ListenerUnavailable
from providers.http_server import HttpLimits, HttpServer

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Control requests handled at once (ordered per key: host.control._ordering_key).
CONTROL_CONCURRENCY = 16
STATE_EVENTS = (LinkSet, LinkDeleted, ConfigSet, ConfigDeleted)


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
    # Connection, request-head and body-reading bounds of the HTTP port.
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    heartbeat_s: float = 1.0
    call_timeout_s: float = 10.0
    # Where component files may be read from; None: ./build, ./examples and the state dir.
    artifact_dirs: list[Path] | None = None
    max_component_bytes: int = DEFAULT_MAX_BYTES
    fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S
    # What this host may start (host.policy): a file, and/or a service to ask
    # ("" asks on the lattice's policy subject, Subjects.policy).
    policy_file: Path | None = None
    policy_subject: str | None = None
    policy_timeout_s: float = DEFAULT_POLICY_TIMEOUT_S
    # Caps whatever a scale request asks for: concurrency, worker threads, loads at once.
    limits: HostLimits = field(default_factory=HostLimits)
    # Labels, annotations, components and provider processes this host takes.
    bounds: HostBounds = field(default_factory=HostBounds)
    # Processes serving the HTTP port (this one included; host.dataplane): 0 or 1 is
    # this process alone.
    data_plane_processes: int = 1

    def plane_settings(self, host_id: str, http_port: int) -> PlaneSettings:
        """What this process and each data-plane member build their runtime from."""
        return PlaneSettings(
            host_id=host_id,
            state_dir=self.state_dir,
            nats=self.nats,
            subjects=self.subjects,
            http_host=self.http_host,
            http_port=http_port,
            max_body_bytes=self.max_body_bytes,
            http_limits=self.http_limits,
            call_timeout_s=self.call_timeout_s,
            artifact_dirs=tuple(self.artifact_dirs) if self.artifact_dirs is not None else None,
            max_component_bytes=self.max_component_bytes,
            fetch_timeout_s=self.fetch_timeout_s,
            limits=self.limits,
            traces=tracing.exporters()[0],
        )


class HostDaemon:
    """A running host; build one with ``await HostDaemon.start(config)``."""

    def __init__(
        self,
        config: HostConfig,
        host_id: str,
        nc: Connection,
        state: LatticeState,
        runtime: HostRuntime,
        http: HttpServer,
        dataplane: DataPlaneGroup,
        supervisor: ProviderSupervisor,
        exports: ExportServer,
        policy: PolicyGate,
    ) -> None:
        self.config = config
        self.subjects = config.subjects
        self.host_id = host_id
        self.friendly_name = friendly_name(host_id)
        self.labels = host_labels(config.labels)
        # Made per process and never stored: secrets sealed to it open only here, now.
        self.sealing_key = SealingKey.generate()
        self.nc = nc
        self.state = state
        self.runtime = runtime
        self.http = http
        # Listeners of http-server links that name an address, set up as the main one.
        self.listeners = AddressListeners(functools.partial(_address_server, http))
        # The other processes serving the HTTP port (none with data_plane_processes <= 1).
        self.dataplane = dataplane
        # Out-of-process providers this host runs.
        self.supervisor = supervisor
        self.exports = exports
        self.policy = policy
        # Components being started, counted against bounds.max_components with those running.
        self._starting: set[str] = set()
        # What the last heartbeat left out to fit (host.bounds.fit_inventory), logged on change.
        self._left_out: list[str] = []
        self._desired: dict[str, ScaleComponent] = {}
        self.started_at = time.time()
        self.draining = False
        self.serving = False
        self._responders: list[Responder] = []
        # Control requests run side by side, but in arrival order per component,
        # provider or kind of change (see host.keyed_locks); re-binds take the
        # component's key too.
        self._ordered = KeyedLocks()
        self._stop_requested = asyncio.Event()
        # Run first at shutdown, while the NATS connection is still up (e.g. an
        # in-process controller that `lattice up` runs beside the host).
        self.before_shutdown: list[Callable[[], Awaitable[None]]] = []
        self._drain_timeout_s = 10.0
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    async def start(cls, config: HostConfig) -> HostDaemon:
        """Connect, build the parts, start answering; on failure nothing is left running."""
        host_id = resolve_host_id(config)
        subjects = config.subjects
        # Refused before connecting: labels over the bounds, a bad policy file or subject.
        check_labels(host_labels(config.labels), config.bounds)
        local_policy = load_policy(config.policy_file) if config.policy_file else None
        policy_subject = _policy_subject(config)
        async with contextlib.AsyncExitStack() as undo:
            nc = await connect(config.nats)
            undo.push_async_callback(close_connection, nc)
            settings = config.plane_settings(host_id, config.http_port)
            runtime, codecs = build_runtime(nc, settings)
            undo.push_async_callback(runtime.close)
            members = max(0, config.data_plane_processes - 1)
            # With members, this process accepts every connection and hands each to
            # the process holding the fewest (host.dataplane.connections).
            http = build_http(runtime, settings, accept_here=members > 0)
            undo.push_async_callback(http.stop)
            await _start_http(http)
            settings = dataclasses.replace(settings, http_port=http.port)
            dataplane = await DataPlaneGroup.start(settings, members, serve_here=http.adopt)
            undo.push_async_callback(dataplane.close)
            http.hand_off = dataplane.take
            publish = functools.partial(_publish, nc, subjects)
            supervisor = ProviderSupervisor(
                nc,
                subjects,
                config.nats,
                host_id,
                config.state_dir / "providers",
                publish,
                max_providers=config.bounds.max_providers,
            )
            undo.push_async_callback(supervisor.close)
            state = LatticeState(nc, subjects, host_id)
            exports = ExportServer(nc, subjects, runtime, codecs, host_id)
            service = (
                PolicyService(nc, policy_subject, config.policy_timeout_s)
                if policy_subject
                else None
            )
            policy = PolicyGate(host_id, publish, local_policy, service)
            daemon = cls(
                config, host_id, nc, state, runtime, http, dataplane, supervisor, exports, policy
            )
            # From here on, the daemon's own shutdown closes everything.
            undo.pop_all()
        try:
            await daemon._listen()
        except BaseException:
            await daemon.shutdown()
            raise
        log.info("host %s (%s) is on lattice %s", host_id, daemon.friendly_name, subjects.lattice)
        return daemon

    async def _listen(self) -> None:
        """Answer control requests and pings, follow link and config changes, say hello."""
        control = ControlInterface(self, self.subjects)
        self._responders.append(
            await serve(
                self.nc,
                self.subjects.host_control_all(self.host_id),
                control.handle,
                concurrency=CONTROL_CONCURRENCY,
            )
        )
        self._responders.append(await serve(self.nc, self.subjects.ping, control.ping))
        for model in STATE_EVENTS:
            subject = self.subjects.events(model.event_type())
            self._responders.append(await Responder.start(self.nc, subject, self._on_state_event))
        await self.publish(HostStarted(source=self.host_id, data=self.inventory()))
        # The server has the subscriptions once start() returns: a request sent
        # right away on another connection finds this host.
        await self.nc.flush()

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
        # Providers first, always: a host never leaves provider processes behind.
        await self.supervisor.close()
        self.draining = True
        for hook in self.before_shutdown:
            try:
                await hook()
            except Exception as exc:
                log.warning("shutdown hook failed: %s", exc)
        await _bounded(self._stop_responding(), "unsubscribing", timeout_s=6.0)
        await self.http.stop()
        await self.listeners.stop()
        await self.dataplane.close()
        for component_id in list(self.runtime.components):
            await self.runtime.stop(component_id, drain_timeout_s)
        await self.runtime.close()
        if not self.nc.is_closed:
            await self.publish(HostStopped(source=self.host_id, data=HostRef(host_id=self.host_id)))
            await close_connection(self.nc)
        self._stop_requested.set()

    async def _stop_responding(self) -> None:
        """Take no more requests; those in flight get a grace period (then are cancelled)."""
        responders, self._responders = self._responders, []
        await asyncio.gather(*(responder.close() for responder in responders), self.exports.close())

    # -- lattice -----------------------------------------------------------

    async def publish(self, event: EventBase[Any]) -> None:
        await _publish(self.nc, self.subjects, event)

    async def _heartbeat(self) -> None:
        while not self._stop_requested.is_set():
            await self.publish(HostHeartbeat(source=self.host_id, data=self.inventory()))
            await asyncio.sleep(self.config.heartbeat_s)

    def inventory(self) -> HostInventory:
        """What runs here, cut down if need be to fit the server's max payload."""
        full = self._inventory()
        budget = self.nc.max_payload - ENVELOPE_BYTES if self.nc.max_payload else 0
        fitted, left_out = fit_inventory(full, budget)
        if left_out != self._left_out:
            self._left_out = left_out
            if left_out:
                log.warning(
                    "inventory over the max payload (%s bytes): left out %s",
                    self.nc.max_payload,
                    ", ".join(left_out),
                )
        return fitted

    def _inventory(self) -> HostInventory:
        components = []
        for running in self.runtime.components.values():
            pool = running.pool
            request = self._desired.get(running.component_id)
            # The data-plane members' calls count with this process's.
            calls, failures, active = self.dataplane.stats(running.component_id)
            components.append(
                ComponentDescription(
                    component_id=running.component_id,
                    # Shown to the lattice: the source without its secrets.
                    source=redacted(running.spec.source),
                    digest=running.digest,
                    count=running.spec.replicas,
                    max_concurrency=pool.limits.max_concurrency,
                    active=pool.active + active,
                    invocations=pool.invocations + calls,
                    failures=pool.failures + failures,
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
            http_url=self.http.url,
            draining=self.draining,
            providers=self.supervisor.describe(),
            secrets_key=self.sealing_key.public,
        )

    async def _on_state_event(self, msg: Any) -> None:
        """A link or named config changed: re-apply the local components it touches."""
        try:
            event = decode_event(msg.data)
        except LatticeError as exc:
            log.warning("ignoring bad state event: %s", exc)
            return
        affected: set[str] = set()
        match event:
            case LinkSet() | LinkDeleted():
                affected = {event.data.source_id, event.data.target}
            case ConfigSet() | ConfigDeleted():
                name = event.data.name
                affected = {c for c, req in self._desired.items() if name in req.config_names}
        for component_id in sorted(affected):
            # In turn with control requests for the component, and reading what it
            # should run only then: a stop that came first is not undone.
            async with self.in_turn(component_key(component_id)):
                if self._closed:
                    return  # shutting down: nothing to re-bind, and NATS may be going away
                request = self._desired.get(component_id)
                if request is None:
                    continue
                try:
                    await self.apply(request)
                except Exception as exc:
                    log.warning("re-binding %s after %s failed: %s", component_id, event.type, exc)

    # -- host operations (host.control.HostOperations) ----------------------------

    async def apply(self, request: ScaleComponent) -> None:
        """Make this host run ``request.count`` replicas with the current links and config."""
        component_id = request.component_id
        if request.count == 0:
            self._desired.pop(component_id, None)
            self.http.routes.remove_component(component_id)
            await self.listeners.remove_component(component_id)
            await self.dataplane.set_routes(list(self.http.routes))
            await self.dataplane.stop_component(component_id)
            await self.exports.stop_serving(component_id)
            if component_id in self.runtime.components:
                await self.runtime.stop(component_id)
            return
        if self._desired.get(component_id) != request:  # a re-bind was admitted before
            check_labels(request.annotations, self.config.bounds, "annotation")
            await self.policy.check_component(request, self.labels)
        links, links_in = await self.state.links_of(component_id)
        named_config = {}
        for name in request.config_names:
            values = await self.state.get_config(name)
            if values is not None:
                named_config[name] = values
        # Secrets were sealed to this host's key by the controller: opened here, they
        # reach the component as config values and nothing else (never logged or shown).
        secrets = open_values(request.secrets, self.sealing_key)
        plan = plan_component(
            request,
            links,
            links_in,
            named_config,
            reserved=self.subjects.owns_bucket,
            secrets=secrets,
        )
        bind_remote_providers(self.runtime, self.nc, self.subjects, plan.remote_providers)
        await self._start_counted(component_id, plan.spec)
        await self.dataplane.start_component(plan.spec, plan.remote_providers)
        await self.exports.serve(component_id)
        self._desired[component_id] = request
        self.http.routes.remove_component(component_id)
        for route in plan.routes:
            self.http.routes.add(route)
        await self.dataplane.set_routes(list(self.http.routes))
        try:
            await self.listeners.update(component_id, plan.address_routes)
        except ListenerUnavailable as exc:  # the component runs; that route cannot
            host, _, port = exc.address.rpartition(":")
            hint = f"the address of an http-server link to {component_id}"
            raise HttpUnavailable(
                host, int(port) if port.isdigit() else 0, exc.reason, hint
            ) from exc

    async def _start_counted(self, component_id: str, spec: ComponentSpec) -> None:
        """Start or update the component, within bounds.max_components."""
        known = set(self.runtime.components) | self._starting
        if component_id not in known:
            check_count("components", len(known), self.config.bounds.max_components)
        self._starting.add(component_id)
        try:
            await self.runtime.start(spec)
        finally:
            self._starting.discard(component_id)

    def desired(self, component_id: str) -> ScaleComponent | None:
        return self._desired.get(component_id)

    def set_label(self, key: str, value: str) -> None:
        check_label_put(self.labels, key, value, self.config.bounds)
        self.labels[key] = value

    def delete_label(self, key: str) -> bool:
        return self.labels.pop(key, None) is not None

    def drain(self) -> None:
        self.draining = True

    async def start_provider(self, request: StartProvider) -> ProviderDescription:
        running = self.supervisor.providers.get(request.provider_id)
        if running is None or running.request != request:  # a repeated start was admitted
            check_labels(request.annotations, self.config.bounds, "annotation")
            await self.policy.check_provider(request, self.labels)
        return await self.supervisor.start(request)

    async def stop_provider(self, provider_id: str) -> ProviderDescription | None:
        return await self.supervisor.stop(provider_id)

    def in_turn(self, key: str) -> AbstractAsyncContextManager[None]:
        return self._ordered.hold(key)


async def _publish(nc: Connection, subjects: Subjects, event: EventBase[Any]) -> None:
    """Publish a host event; a closed or failing connection is logged, never raised."""
    if nc.is_closed:
        return
    try:
        await publish_event(nc, subjects, event)
    except Exception as exc:
        log.warning("could not publish %s: %s", event.event_type(), exc)


def resolve_host_id(config: HostConfig) -> str:
    """Creds bound to a host id (lattice.auth) name the host; else it is kept in the state dir.

    Raises AuthError when ``config.host_id`` differs from the id the creds are bound to.
    """
    bound = bound_host_id(config.nats.credentials_file, config.host_id)
    return bound or stable_host_id(config.state_dir, config.host_id, str(config.http_port))


def _policy_subject(config: HostConfig) -> str | None:
    """The subject to ask the policy service on, None without one; checked."""
    if config.policy_subject is None:
        return None
    subject = config.policy_subject or config.subjects.policy
    for token in subject.split("."):
        check_token("policy subject token", token)
    return subject


def _address_server(main: HttpServer, host: str, port: int) -> HttpServer:
    """A listener for an address route: the main listener's handlers and limits."""
    server = HttpServer(
        main.invoke, host, port, main.max_body_bytes, main.limits, exchanges=main.exchanges
    )
    server.host_id = main.host_id
    return server


async def _start_http(http: HttpServer) -> None:
    """Listen, or say plainly which address cannot be served and why."""
    try:
        await http.start()
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else str(exc)
        raise HttpUnavailable(http.bind_host, http.port, reason) from exc


async def _bounded(work: Awaitable[Any], what: str, timeout_s: float = 3.0) -> bool:
    """Await ``work`` for at most ``timeout_s``; False (logged) if it failed or timed out."""
    try:
        await asyncio.wait_for(work, timeout_s)
        return True
    except Exception as exc:  # shutdown goes on whatever NATS does
        log.warning("%s failed during shutdown: %s", what, str(exc) or type(exc).__name__)
        return False
