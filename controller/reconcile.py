"""Desired state vs observed state -> commands. Purely computational.

``reconcile(apps, observed, pending, now, host_timeout_s)`` reads no clock, sends
nothing and awaits nothing: same inputs, same commands. The service
(``controller.service``) gathers the inputs and the executor sends the output.

The pass is split by concept: ``controller.placement`` says where replicas go (alive
and eligible hosts, spread and daemon scalers), ``controller.links`` turns each app's
links into link commands (HTTP route owners included) and ``controller.named_config``
resolves named config; this module holds the per-host change rules, orphans and status.

Rules:

- A host is alive if it heartbeated within ``host_timeout_s``; replicas on dead hosts
  are gone and get placed on live ones (failover).
- A draining host gets no new replicas; its current ones stay until the replicas
  elsewhere are observed running, then it is scaled to 0 (no gap during a drain).
- ``spread``: instances split over spreads by weight (largest remainder), each spread's
  share over its matching hosts as evenly as possible, preferring hosts that already
  run replicas. ``daemon``: instances on every matching host.
- A scale command in flight (``pending``) counts as done until it is confirmed by a
  heartbeat or expires, so it is not re-issued every pass.
- Components and links annotated with an app that is no longer deployed are removed.
- Ids are scoped per app (``deploy.names.scoped_id``: ``<app>--<name>``), so two apps
  never name the same component, provider or link. An HTTP route has one owner app
  (``controller.links``); another app claiming it gets a reason, not the route.
- A component (or placed provider) without a scaler is declared, not placed (as in
  wadm): its status row says so, the app is not failed by it. A capability whose image
  has no counterpart here gets a row naming the supported images; its links are left
  out and the rest of the app deploys.
- A missing named config (``lattice config put``) leaves out the link naming it, or
  keeps the component naming it from starting, with a reason in the app's status.
- Out-of-process providers (capabilities of a placed kind) are placed like components by
  their scaler, but at most one per host; on a config change each host replaces its
  provider process, the new one serving before the old one stops.
  A component's link to one becomes a link to the contract the provider serves, with
  ``provider=<id>``, so its calls go to whichever host runs the provider.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from catalog.kinds import SUPPORTED_IMAGES
from controller.commands import (
    Command,
    DeleteLinkCommand,
    ProviderCommand,
    PutLinkCommand,
    ScaleCommand,
)
from controller.links import link_commands, route_owners
from controller.model import HostView, Observed, Pending, ProviderReplica
from controller.named_config import missing_config, missing_reason
from controller.placement import HostIndex, alive_hosts, claim, placement
from deploy.model import AppSpec, CapabilityDecl, ComponentDecl
from deploy.names import scoped_id
from lattice.app_status import AppState, AppStatus, ComponentStatus


@dataclass(frozen=True)
class Plan:
    commands: tuple[Command, ...]
    status: dict[str, AppStatus]


def component_id(app: str, component: str) -> str:
    return scoped_id(app, component)


def revision(app: AppSpec, decl: ComponentDecl) -> str:
    """Identity of what a replica should run; a change rolls replicas to the new one."""
    parts: tuple[object, ...] = (decl.source, decl.sha256, decl.config, decl.max_concurrency)
    if decl.config_names or decl.secrets:  # (kept out otherwise: revisions stay as they were)
        parts = (*parts, decl.config_names, decl.secrets)
    text = repr(parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def provider_revision(decl: CapabilityDecl) -> str:
    """Identity of what a provider replica should run; a change replaces it."""
    return hashlib.sha256(repr((decl.provider, decl.config)).encode()).hexdigest()[:16]


def reconcile(
    apps: Sequence[AppSpec],
    observed: Observed,
    pending: Mapping[tuple[str, str, str], Pending],
    now: float,
    host_timeout_s: float,
    named_config: Mapping[str, Mapping[str, str]] | None = None,
) -> Plan:
    """``named_config``: the named configs the apps' links and components name (None:
    not read, so a component's names pass through unchecked)."""
    hosts = alive_hosts(observed, now, host_timeout_s)
    # Replicas per host so far in this pass; placement prefers the least loaded.
    load = {
        h.host_id: sum(r.count for r in h.components.values()) + len(h.providers) for h in hosts
    }
    index = HostIndex([h for h in hosts if not h.draining])
    replicas = _Replicas(hosts, pending, now)
    commands: list[Command] = []
    status: dict[str, AppStatus] = {}
    wanted_components: set[str] = set()
    wanted_providers: set[str] = set()
    wanted_links: set[str] = set()
    owners = route_owners(apps, observed)
    for app in apps:
        put_links, link_keys, app_reasons = link_commands(app, observed, owners, named_config)
        commands.extend(put_links)
        wanted_links |= link_keys
        component_states = list(_not_placed(app))
        busy = bool(put_links)
        for decl in app.components:
            if decl.scaler is None:
                continue
            cid = component_id(app.name, decl.name)
            wanted_components.add(cid)
            missing = missing_config(decl.config_names, named_config)
            if missing:
                reason = missing_reason(missing)
                app_reasons.append(f"{decl.name}: {reason}")
                component_states.append(
                    ComponentStatus(
                        component=decl.name, component_id=cid, desired=0, running=0, reason=reason
                    )
                )
                wanted_components.discard(cid)
                continue
            scale_commands, state = _component(app, decl, replicas, index, load)
            commands.extend(scale_commands)
            component_states.append(state)
            busy = busy or bool(scale_commands) or state.running != state.desired
            if state.reason:
                app_reasons.append(f"{decl.name}: {state.reason}")
        for capability in app.capabilities:
            if capability.scaler is None or not capability.placed:
                continue
            wanted_providers.add(component_id(app.name, capability.name))
            provider_commands, state = _provider(app, capability, replicas, index, load)
            commands.extend(provider_commands)
            component_states.append(state)
            busy = busy or bool(provider_commands) or state.running != state.desired
            if state.reason:
                app_reasons.append(f"{capability.name}: {state.reason}")
        state_name: AppState = "failed" if app_reasons else "reconciling" if busy else "deployed"
        status[app.name] = AppStatus(
            app=app.name,
            version=app.version,
            state=state_name,
            components=tuple(component_states),
            reasons=tuple(app_reasons),
        )
    wanted = (wanted_components, wanted_providers, wanted_links)
    commands.extend(_orphans(hosts, observed, replicas, *wanted))
    # Links first: a component must find its links in place when it starts; then the
    # providers its links lead to.
    commands.sort(key=_command_order)
    return Plan(tuple(commands), status)


def _not_placed(app: AppSpec) -> list[ComponentStatus]:
    """Rows for what the app declares but nothing places: no scaler, or no counterpart."""
    rows = []
    for decl in app.components:
        if decl.scaler is None:
            rows.append(_row(app, decl.name, "no spreadscaler or daemonscaler: not placed"))
    for capability in app.capabilities:
        if not capability.supported:
            reason = (
                f"capability image '{capability.image}' has no counterpart here, so it is "
                f"not run and links to and from it are left out (supported images: "
                f"{', '.join(SUPPORTED_IMAGES)}; or properties.provider)"
            )
            rows.append(_row(app, capability.name, reason))
        elif capability.placed and capability.scaler is None:
            rows.append(_row(app, capability.name, "no spreadscaler or daemonscaler: not placed"))
    return rows


def _row(app: AppSpec, name: str, reason: str) -> ComponentStatus:
    cid = component_id(app.name, name)
    return ComponentStatus(component=name, component_id=cid, desired=0, running=0, reason=reason)


def _command_order(command: Command) -> int:
    if isinstance(command, PutLinkCommand):
        return 0
    return 1 if isinstance(command, ProviderCommand) else 2


class _Replicas:
    """Where each component runs (observed, or in flight), indexed once per pass.

    Per component, only the hosts that run it or are about to are visited; a pass
    over 1,000 apps then costs per replica, not per app times every host.
    """

    def __init__(
        self,
        hosts: Sequence[HostView],
        pending: Mapping[tuple[str, str, str], Pending],
        now: float,
    ) -> None:
        self.hosts = {h.host_id: h for h in hosts}
        self.running: dict[str, dict[str, tuple[int, str]]] = {}
        for host in hosts:
            for cid, replicas in host.components.items():
                self.running.setdefault(cid, {})[host.host_id] = (replicas.count, replicas.revision)
        self.current: dict[str, dict[str, tuple[int, str]]] = {
            cid: dict(by_host) for cid, by_host in self.running.items()
        }
        # Out-of-process providers: the same, with a count of 0 or 1 per host.
        self.providers: dict[str, dict[str, ProviderReplica]] = {}
        for host in hosts:
            for pid, provider in host.providers.items():
                self.providers.setdefault(pid, {})[host.host_id] = provider
        self.current_providers: dict[str, dict[str, tuple[int, str]]] = {
            pid: {h: (1, p.revision) for h, p in by_host.items()}
            for pid, by_host in self.providers.items()
        }
        for (kind, host_id, ident), flight in pending.items():
            if host_id in self.hosts and flight.expires_at > now:
                table = self.current if kind == "scale" else self.current_providers
                table.setdefault(ident, {})[host_id] = (flight.count, flight.revision)

    def of(self, cid: str) -> dict[str, tuple[int, str]]:
        """Replicas and revision per host, counting an unexpired in-flight command as done."""
        return self.current.get(cid, {})

    def provider_of(self, pid: str) -> dict[str, tuple[int, str]]:
        """Like ``of``, for an out-of-process provider (count 0 or 1)."""
        return self.current_providers.get(pid, {})


def _component(
    app: AppSpec,
    decl: ComponentDecl,
    replicas: _Replicas,
    index: HostIndex,
    load: dict[str, int],
) -> tuple[list[ScaleCommand], ComponentStatus]:
    assert decl.scaler is not None
    cid = component_id(app.name, decl.name)
    rev = revision(app, decl)
    current = replicas.of(cid)
    counts = {host_id: count for host_id, (count, _) in current.items() if count}
    targets, reasons = placement(decl.scaler, index, counts, load)
    claim(load, targets, counts)
    desired_total = sum(targets.values())
    running = {h: n for h, (n, _) in replicas.running.get(cid, {}).items() if n}
    # Replicas observed running the right revision on hosts that keep them.
    ready_elsewhere = sum(
        min(n, targets.get(h, 0))
        for h, (n, running_rev) in replicas.running.get(cid, {}).items()
        if running_rev == rev and not replicas.hosts[h].draining
    )
    commands = [
        _scale(app, decl, host_id, target, rev)
        for host_id, target in _changes(replicas, current, targets, rev, ready_elsewhere)
    ]
    state = ComponentStatus(
        component=decl.name,
        component_id=cid,
        desired=desired_total,
        running=sum(running.values()),
        hosts=running,
        reason="; ".join(reasons),
    )
    return commands, state


def _changes(
    replicas: _Replicas,
    current: Mapping[str, tuple[int, str]],
    targets: Mapping[str, int],
    rev: str,
    ready_elsewhere: int,
) -> list[tuple[str, int]]:
    """(host, new count) for each host whose replicas must change.

    A draining host keeps what it runs until ``ready_elsewhere`` replicas of the right
    revision are observed on the hosts that keep them.
    """
    changes = []
    desired_total = sum(targets.values())
    for host_id in sorted(set(targets) | set(current)):
        count, running_rev = current.get(host_id, (0, ""))
        target = targets.get(host_id, 0)
        if replicas.hosts[host_id].draining and count and ready_elsewhere < desired_total:
            target = count  # keep serving here until the replacements are up
        if target == count and (target == 0 or running_rev == rev):
            continue
        changes.append((host_id, target))
    return changes


def _provider(
    app: AppSpec,
    decl: CapabilityDecl,
    replicas: _Replicas,
    index: HostIndex,
    load: dict[str, int],
) -> tuple[list[ProviderCommand], ComponentStatus]:
    """Like ``_component``, for a placed provider: at most one per host."""
    assert decl.scaler is not None
    pid = component_id(app.name, decl.name)
    rev = provider_revision(decl)
    current = replicas.provider_of(pid)
    counts = {host_id: 1 for host_id, (count, _) in current.items() if count}
    wanted, reasons = placement(decl.scaler, index, counts, load)
    targets = {host_id: 1 for host_id, n in wanted.items() if n}
    if sum(wanted.values()) > len(targets) and decl.scaler.kind == "spread":
        reasons.append(
            f"{decl.scaler.instances} replicas wanted but a provider runs once per host "
            f"and {len(targets)} hosts match"
        )
    claim(load, targets, counts)
    observed = replicas.providers.get(pid, {})
    healthy = {h for h, p in observed.items() if p.healthy}
    ready_elsewhere = sum(
        1
        for h in healthy
        if h in targets and observed[h].revision == rev and not replicas.hosts[h].draining
    )
    commands = []
    for host_id, target in _changes(replicas, current, targets, rev, ready_elsewhere):
        if target:
            commands.append(
                ProviderCommand(host_id, pid, True, decl.provider, decl.config, rev, app.name)
            )
        else:
            commands.append(ProviderCommand(host_id, pid, False, app=app.name))
    state = ComponentStatus(
        component=decl.name,
        component_id=pid,
        desired=len(targets),
        running=len(healthy),
        hosts={h: 1 for h in sorted(healthy)},
        reason="; ".join(reasons),
    )
    return commands, state


def _scale(app: AppSpec, decl: ComponentDecl, host_id: str, count: int, rev: str) -> ScaleCommand:
    return ScaleCommand(
        host_id=host_id,
        component_id=component_id(app.name, decl.name),
        count=count,
        source=decl.source,
        revision=rev,
        app=app.name,
        version=app.version,
        sha256=decl.sha256,
        config=decl.config,
        max_concurrency=decl.max_concurrency,
        config_names=decl.config_names,
        secrets=tuple((s.name, s.key, s.field or "") for s in decl.secrets),
    )


def _orphans(
    hosts: Sequence[HostView],
    observed: Observed,
    replicas: _Replicas,
    wanted_components: set[str],
    wanted_providers: set[str],
    wanted_links: set[str],
) -> list[Command]:
    """Controller-made replicas, providers and links that no deployed app wants any more."""
    commands: list[Command] = []
    for host in hosts:
        for cid, running in sorted(host.components.items()):
            count, _ = replicas.of(cid).get(host.host_id, (0, ""))
            if running.app and cid not in wanted_components and count:
                commands.append(ScaleCommand(host.host_id, cid, 0, "", "", running.app, ""))
        for pid, provider in sorted(host.providers.items()):
            count, _ = replicas.provider_of(pid).get(host.host_id, (0, ""))
            if provider.app and pid not in wanted_providers and count:
                commands.append(ProviderCommand(host.host_id, pid, False, app=provider.app))
    for key, link in sorted(observed.links.items()):
        if link.app and key not in wanted_links:
            commands.append(DeleteLinkCommand(key))
    return commands
