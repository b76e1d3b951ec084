"""The controller service: observe the lattice, hold the lease, reconcile, execute.

Inputs are gathered here (heartbeats, host events, links and specs from JetStream)
and fed to the pure ``reconcile()``; its commands go to the ``Executor``. A pass
runs on every relevant event and on a periodic tick, which is also what notices a
host whose heartbeats stopped. Events are coalesced: a pass waits until none came
for ``debounce_s``, or at most ``tick_s``, so a storm of N events costs a pass per
tick, not per event. Only the lease holder acts; the others keep their view warm
so a takeover is immediate.

A stored spec is untrusted input (``controller.spec_loader``): one that cannot be
used marks its own app ``invalid`` with the reason, and the other apps go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from catalog import annotations as annotation
from controller.commands import ScaleCommand
from controller.executor import Executor
from controller.model import HostView, LinkView, Observed, ProviderReplica, Replicas
from controller.reconcile import Plan, reconcile
from controller.spec_loader import SpecLoader
from deploy.model import AppSpec
from deploy.names import app_of
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
from lattice.secrets import SealingKey, SecretStore
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
        debounce_s: float = 0.05,
        lease_ttl_s: float = 3.0,
        secrets_key: SealingKey | None = None,
    ) -> None:
        self.nc = nc
        self.subjects = subjects or Subjects()
        self.controller_id = controller_id or "ctl-" + uuid.uuid4().hex[:8]
        self.host_timeout_s = host_timeout_s
        self.tick_s = tick_s
        self.debounce_s = debounce_s
        self.client = LatticeClient(nc, self.subjects)
        self.specs = SpecStore(nc, self.subjects, source=self.controller_id)
        self.loader = SpecLoader(self.specs)
        self.lease = Lease(nc, self.subjects, self.controller_id, lease_ttl_s)
        # The lattice's secrets key: opens stored secrets to reseal them per host.
        self.secrets_key = secrets_key
        self.secrets = SecretStore(nc, self.subjects)
        self.executor = Executor(
            self.client,
            confirm_window_s=max(5.0, 3 * host_timeout_s),
            sealer=self._seal if secrets_key is not None else None,
        )
        self.hosts: dict[str, HostView] = {}
        self.links: dict[str, LinkView] = {}
        self.apps: list[AppSpec] = []
        self.spec_errors: dict[str, str] = {}
        self.last_plan: Plan | None = None
        self.passes = 0  # reconcile passes run, for tests and metrics
        self._published_status: dict[str, AppStatus] = {}
        self._wake = asyncio.Event()
        self._links_dirty = True
        self._specs_dirty = True
        self._stop = asyncio.Event()
        self._subscriptions: list[Any] = []

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self.secrets_key is not None and not await self.secrets.publish_key(self.secrets_key):
            log.error("the lattice's secrets key is another controller's: secrets won't open")
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
        try:
            links = await self.client.links()
        except BaseException:
            self._links_dirty = True  # read again next pass
            raise
        self.links = {
            link.key: LinkView(
                link.key,
                link.target,
                tuple(link.interfaces),
                tuple(sorted(link.config.items())),
                link.annotations.get(annotation.APP, ""),
                link.source_id,
            )
            for link in links
        }

    async def _refresh_specs(self) -> None:
        self._specs_dirty = False
        try:
            loaded = await self.loader.load(self.apps)
        except BaseException:
            self._specs_dirty = True  # read again next pass
            raise
        self._specs_dirty = self._specs_dirty or not loaded.complete
        self.apps = list(loaded.apps)
        self.spec_errors = loaded.errors

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
            await self._settle()
            self._forget_lost_hosts()
            try:
                await self.reconcile_once()
            except LatticeError as exc:
                log.warning("reconcile pass failed: %s", exc)
            except Exception:  # a bug in one pass must not end every later one
                log.exception("reconcile pass failed")

    async def _settle(self) -> None:
        """Coalesce a burst of events into one pass: return once no event came for
        ``debounce_s``, or ``tick_s`` after the first, whichever is sooner."""
        deadline = time.monotonic() + self.tick_s
        while not self._stop.is_set():
            self._wake.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), min(self.debounce_s, remaining))
            except TimeoutError:
                return

    async def reconcile_once(self) -> Plan | None:
        self.passes += 1
        if self._specs_dirty:
            await self._refresh_specs()
        if self._links_dirty:
            await self._refresh_links()
        observed = Observed(hosts=dict(self.hosts), links=dict(self.links))
        self.executor.confirm(observed)
        named = await self._named_config()
        now = time.time()
        plan = reconcile(
            self.apps, observed, self.executor.pending, now, self.host_timeout_s, named
        )
        self.last_plan = plan
        if not self.is_leader:
            return plan
        started = self.executor.dispatch(plan.commands)
        if started:
            log.info("dispatched %d command(s)", len(started))
        await self._publish_status(plan)
        return plan

    async def _named_config(self) -> dict[str, dict[str, str]]:
        """The named configs the apps refer to (few reads: only names in use)."""
        names = {n for app in self.apps for c in app.components for n in c.config_names}
        names |= {
            n
            for app in self.apps
            for link in app.links
            for n in (*link.source_config_names, *link.target_config_names)
        }
        found = {}
        for name in sorted(names):
            values = await self.client.get_config(name)
            if values is not None:
                found[name] = values
        return found

    async def _seal(self, command: ScaleCommand) -> dict[str, str]:
        assert self.secrets_key is not None  # the sealer is set only with a key
        host = self.hosts.get(command.host_id)
        public = host.secrets_key if host is not None else ""
        return await self.secrets.sealed_for(command.secrets, self.secrets_key, public)

    async def _publish_status(self, plan: Plan) -> None:
        errors = self.executor.errors()
        for status in plan.status.values():
            await self._put_status(with_failures(status, errors))
        for app, error in self.spec_errors.items():
            await self._put_status(AppStatus(app=app, state="invalid", reasons=(error,)))

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
        secrets_key=inventory.secrets_key,
    )


def with_failures(status: AppStatus, errors: dict[tuple[str, str, str], str]) -> AppStatus:
    """The status with the app's command failures as reasons, which mark it failed."""
    failures = [
        f"{component} on {host}: {error}"
        for (_, host, component), error in sorted(errors.items())
        if app_of(component) == status.app
    ]
    if not failures:
        return status
    return status.model_copy(update={"state": "failed", "reasons": (*status.reasons, *failures)})
