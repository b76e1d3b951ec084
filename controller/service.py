"""The controller service: observe the lattice, hold the lease, reconcile, execute.

Inputs are gathered here (heartbeats, host events, links and specs from JetStream)
and fed to the pure ``reconcile()``; its commands go to the ``Executor``. A pass
runs on every relevant event (debounced) and on a periodic tick, which is also
what notices a host whose heartbeats stopped. Only the lease holder acts; the
others keep their view warm so a takeover is immediate.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from catalog import annotations as annotation
from controller.executor import Executor
from controller.model import HostView, LinkView, Observed, ProviderReplica, Replicas
from controller.reconcile import Plan, reconcile
from deploy.errors import ManifestError
from deploy.manifest import load_manifest
from deploy.model import AppSpec
from lattice.app_status import AppStatus
from lattice.client import LatticeClient
from lattice.connection import Connection
from lattice.errors import BadMessage, LatticeError
from lattice.events import (
    ComponentScaled,
    ComponentScaleFailed,
    HostHeartbeat,
    HostStarted,
    HostStopped,
    LinkDeleted,
    LinkSet,
    SpecChanged,
    decode_event,
)
from lattice.lease import Lease
from lattice.messages import HostInventory
from lattice.specs import SpecStore
from lattice.subjects import Subjects

log = logging.getLogger(__name__)

# The events a controller acts on: host liveness and inventories, links and specs that
# changed, scale requests confirmed or failed (each wakes the reconcile loop).
WATCHED = (
    HostHeartbeat,
    HostStarted,
    HostStopped,
    LinkSet,
    LinkDeleted,
    SpecChanged,
    ComponentScaled,
    ComponentScaleFailed,
)


class Controller:
    def __init__(
        self,
        nc: Connection,
        subjects: Subjects | None = None,
        *,
        controller_id: str | None = None,
        host_timeout_s: float = 2.5,
        tick_s: float = 0.5,
        lease_ttl_s: float = 3.0,
    ) -> None:
        self.nc = nc
        self.subjects = subjects or Subjects()
        self.controller_id = controller_id or "ctl-" + uuid.uuid4().hex[:8]
        self.host_timeout_s = host_timeout_s
        self.tick_s = tick_s
        self.client = LatticeClient(nc, self.subjects)
        self.specs = SpecStore(nc, self.subjects, source=self.controller_id)
        self.lease = Lease(nc, self.subjects, self.controller_id, lease_ttl_s)
        self.executor = Executor(self.client, confirm_window_s=max(5.0, 3 * host_timeout_s))
        self.hosts: dict[str, HostView] = {}
        self.links: dict[str, LinkView] = {}
        self.apps: list[AppSpec] = []
        self.spec_errors: dict[str, str] = {}
        self._specs_cache: dict[tuple[str, str, str | None], AppSpec] = {}
        self.last_plan: Plan | None = None
        self._published_status: dict[str, AppStatus] = {}
        self._wake = asyncio.Event()
        self._links_dirty = True
        self._specs_dirty = True
        self._stop = asyncio.Event()
        self._subscriptions: list[Any] = []

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._subscriptions = [
            await self.nc.subscribe(self.subjects.events(model.event_type()), cb=self._on_event)
            for model in WATCHED
        ]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            lease = tasks.create_task(self._lease_loop(), name=f"{self.controller_id}-lease")
            passes = tasks.create_task(self._reconcile_loop(), name=f"{self.controller_id}-loop")
            await self._stop.wait()
            self._wake.set()
            lease.cancel()
            passes.cancel()
        await self.executor.drain()
        for sub in self._subscriptions:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may be closing
                log.debug("unsubscribe failed: %s", exc)
        try:
            await self.lease.release()
        except LatticeError as exc:
            log.debug("lease release failed: %s", exc)

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def is_leader(self) -> bool:
        return self.lease.held()

    # -- observation -------------------------------------------------------------------

    async def _on_event(self, msg: Any) -> None:
        try:
            event = decode_event(msg.data)
        except BadMessage as exc:
            log.debug("ignoring bad event: %s", exc)
            return
        source = self.subjects.event_source(msg.subject)
        match event:
            case HostHeartbeat() | HostStarted() | HostStopped() if event.data.host_id != source:
                # Only host X may publish under X (lattice.auth): trust the subject, not the body.
                log.warning("ignoring %s claiming host %s", msg.subject, event.data.host_id)
                return
            case HostHeartbeat() | HostStarted():
                # Liveness by our own clock at receipt: host clocks may disagree.
                self.hosts[event.data.host_id] = host_view(event.data, time.time())
            case HostStopped():
                self.hosts.pop(event.data.host_id, None)
            case LinkSet() | LinkDeleted():
                self._links_dirty = True
            case SpecChanged():
                self._specs_dirty = True
            case _:
                pass  # a scale confirmed or failed: a pass looks at it at once
        self._wake.set()

    async def _refresh_links(self) -> None:
        self._links_dirty = False
        links = await self.client.links()
        self.links = {
            link.key: LinkView(
                link.key,
                link.target,
                tuple(link.interfaces),
                tuple(sorted(link.config.items())),
                link.annotations.get(annotation.APP, ""),
            )
            for link in links
        }

    async def _refresh_specs(self) -> None:
        self._specs_dirty = False
        apps = []
        errors = {}
        for index in await self.specs.apps():
            if index.deployed is None:
                continue
            try:
                version, text = await self.specs.get(index.name, index.deployed)
                base_dir = next((v.base_dir for v in index.versions if v.version == version), None)
                apps.append(self._parsed(index.name, version, text, base_dir))
            except (ManifestError, LatticeError) as exc:
                errors[index.name] = str(exc)
        self.apps = apps
        self.spec_errors = errors

    def _parsed(self, app: str, version: str, text: str, base_dir: str | None) -> AppSpec:
        """Parse a stored spec once: a stored version never changes."""
        key = (app, version, base_dir)
        spec = self._specs_cache.get(key)
        if spec is None:
            spec = self._specs_cache[key] = load_manifest(
                text, f"{app}@{version}", base_dir=base_dir
            )
        return spec

    # -- acting ------------------------------------------------------------------------

    # The loops end by cancellation, and also check _stop: Python 3.11's wait_for (here
    # and inside nats-py) can swallow a cancellation that arrives as its await
    # completes, and a loop that missed it would hold run()'s TaskGroup open forever.

    async def _lease_loop(self) -> None:
        while not self._stop.is_set():
            try:
                was = self.is_leader
                if await self.lease.try_acquire() and not was:
                    log.info("controller %s is now the leader", self.controller_id)
                    self._wake.set()
            except LatticeError as exc:
                log.warning("lease renewal failed: %s", exc)
            await asyncio.sleep(self.lease.ttl_s / 3)

    def _next_wait(self) -> float:
        """Until the next tick, or sooner when a host's heartbeat is about to expire."""
        now = time.time()
        expiries = [
            h.last_seen + self.host_timeout_s - now
            for h in self.hosts.values()
            if h.last_seen + self.host_timeout_s > now
        ]
        return max(0.01, min([self.tick_s, *(e + 0.01 for e in expiries)]))

    def _forget_lost_hosts(self) -> None:
        """Hosts silent for long are dropped: their view and every pass would only grow."""
        cutoff = time.time() - 10 * self.host_timeout_s
        for host_id in [h for h, view in self.hosts.items() if view.last_seen < cutoff]:
            del self.hosts[host_id]

    async def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._wake.wait(), self._next_wait())
            except TimeoutError:
                pass
            self._forget_lost_hosts()
            self._wake.clear()
            await asyncio.sleep(0.02)  # debounce a burst of events into one pass
            try:
                await self.reconcile_once()
            except LatticeError as exc:
                log.warning("reconcile pass failed: %s", exc)

    async def reconcile_once(self) -> Plan | None:
        if self._specs_dirty:
            await self._refresh_specs()
        if self._links_dirty:
            await self._refresh_links()
        observed = Observed(hosts=dict(self.hosts), links=dict(self.links))
        self.executor.confirm(observed)
        now = time.time()
        plan = reconcile(self.apps, observed, self.executor.pending, now, self.host_timeout_s)
        self.last_plan = plan
        if not self.is_leader:
            return plan
        started = self.executor.dispatch(plan.commands)
        if started:
            log.info("dispatched %d command(s)", len(started))
        await self._publish_status(plan)
        return plan

    async def _publish_status(self, plan: Plan) -> None:
        errors = self.executor.errors()
        for status in plan.status.values():
            await self._put_status(with_failures(status, errors))
        for app, error in self.spec_errors.items():
            await self._put_status(AppStatus(app=app, state="failed", reasons=(error,)))

    async def _put_status(self, status: AppStatus) -> None:
        if self._published_status.get(status.app) != status:
            await self.specs.put_status(status)
            self._published_status[status.app] = status


def host_view(inventory: HostInventory, seen_at: float) -> HostView:
    return HostView(
        host_id=inventory.host_id,
        labels=dict(inventory.labels),
        last_seen=seen_at,
        draining=inventory.draining,
        components={
            c.component_id: Replicas(
                c.count,
                c.annotations.get(annotation.REVISION, ""),
                c.annotations.get(annotation.APP, ""),
            )
            for c in inventory.components
        },
        providers={
            p.provider_id: ProviderReplica(
                p.annotations.get(annotation.REVISION, ""),
                p.annotations.get(annotation.APP, ""),
                p.healthy,
            )
            for p in inventory.providers
        },
    )


def with_failures(status: AppStatus, errors: dict[tuple[str, str, str], str]) -> AppStatus:
    """The status with the app's command failures as reasons, which mark it failed."""
    failures = [
        f"{component} on {host}: {error}"
        for (_, host, component), error in sorted(errors.items())
        if component.startswith(f"{status.app}-")
    ]
    if not failures:
        return status
    return status.model_copy(update={"state": "failed", "reasons": (*status.reasons, *failures)})
