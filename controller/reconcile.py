"""Desired state vs observed state -> commands. Purely computational.

``reconcile(apps, observed, pending, now, host_timeout_s)`` reads no clock, sends
nothing and awaits nothing: same inputs, same commands. The service
(``controller.service``) gathers the inputs and the executor sends the output.

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
  never name the same component, provider or link. An HTTP route (path prefix and
  Host, ``deploy.names.route_key``) has one owner app: the app whose route link is in
  the lattice already, else the first claimant by name. Another app claiming it gets
  no link for it, and a reason naming the owner in its status (it never takes it over).
- A component (or placed provider) without a scaler is declared, not placed (as in
  wadm): its status row says so, the app is not failed by it. A capability whose image
  has no counterpart here gets a row naming the supported images; its links are left
  out and the rest of the app deploys.
- Named config a link names (``lattice config put``) is resolved from
  ``named_config`` (the values the service read for the names the apps use); a missing
  one leaves that link out with a reason. A component's named configs are passed on by
  name (the host layers them under its inline config); a missing one is a reason
  and the component is not started until it exists.
- Out-of-process providers (capabilities of a placed kind) are placed like components by
  their scaler, but at most one per host; on a config change each host replaces its
  provider process, the new one serving before the old one stops.
  A component's link to one becomes a link to the contract the provider serves, with
  ``provider=<id>``, so its calls go to whichever host runs the provider.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from catalog.kinds import HTTP_SERVER, SUPPORTED_IMAGES, placed_kind
from controller.commands import (
    Command,
    DeleteLinkCommand,
    Pairs,
    ProviderCommand,
    PutLinkCommand,
    ScaleCommand,
)
from controller.model import (
    HostView,
    LinkView,
    Observed,
    Pending,
    ProviderReplica,
)
from deploy.model import AppSpec, CapabilityDecl, ComponentDecl, LinkDecl, Scaler, Spread
from deploy.names import RouteKey, route_key, routes, scoped_id
from lattice.app_status import AppState, AppStatus, ComponentStatus


@dataclass(frozen=True)
class Plan:
    commands: tuple[Command, ...]
    status: dict[str, AppStatus]


def component_id(app: str, component: str) -> str:
    return scoped_id(app, component)


def route_owners(apps: Sequence[AppSpec], observed: Observed) -> dict[RouteKey, str]:
    """The app owning each route some app claims: one holding it now, else the first
    claimant by name (so the owner does not depend on the order apps are listed)."""
    claims: dict[RouteKey, set[str]] = {}
    for app in apps:
        for key, _ in routes(app):
            claims.setdefault(key, set()).add(app.name)
    held: dict[RouteKey, set[str]] = {}
    for link in observed.links.values():
        if link.source == HTTP_SERVER and link.app:
            held.setdefault(route_key(dict(link.config)), set()).add(link.app)
    return {
        key: min(claimants & held.get(key, set()) or claimants) for key, claimants in claims.items()
    }


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


def alive_hosts(observed: Observed, now: float, host_timeout_s: float) -> list[HostView]:
    return sorted(
        (h for h in observed.hosts.values() if now - h.last_seen <= host_timeout_s),
        key=lambda h: h.host_id,
    )


def split_by_weight(total: int, weights: Sequence[int]) -> list[int]:
    """Largest-remainder split of ``total`` proportional to ``weights``."""
    weight_sum = sum(weights)
    if weight_sum <= 0:
        return [0] * len(weights)
    exact = [total * w / weight_sum for w in weights]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def spread_evenly(
    total: int, hosts: Sequence[HostView], current: Mapping[str, int], load: Mapping[str, int]
) -> dict[str, int]:
    """``total`` replicas over ``hosts``, as even as possible.

    Ties go to hosts already running the component (no needless moves), then to the
    least loaded hosts (so many apps do not pile onto the same few hosts).
    """
    if not hosts:
        return {}

    def preference(h: HostView) -> tuple[int, int, str]:
        return (-current.get(h.host_id, 0), load.get(h.host_id, 0), h.host_id)

    base, extra = divmod(total, len(hosts))
    if base == 0:
        # Fewer replicas than hosts: only the ``extra`` most preferred get one.
        return {h.host_id: 1 for h in heapq.nsmallest(extra, hosts, key=preference)}
    ordered = sorted(hosts, key=preference)
    return {h.host_id: base + (1 if i < extra else 0) for i, h in enumerate(ordered)}


def describe(spread: Spread) -> str:
    return ",".join(f"{k}={v}" for k, v in spread.requirements) or "any host"


class HostIndex:
    """Eligible hosts of one pass, and which of them match each set of requirements.

    Many apps share a few requirement sets; matching once per set and pass (not once
    per app) is what keeps 1,000 apps over 100 hosts fast.
    """

    def __init__(self, eligible: Sequence[HostView]) -> None:
        self.eligible = list(eligible)
        self._matching: dict[tuple[tuple[str, str], ...], list[HostView]] = {}

    def matching(self, spread: Spread) -> list[HostView]:
        found = self._matching.get(spread.requirements)
        if found is None:
            found = [h for h in self.eligible if spread.matches(h.labels)]
            self._matching[spread.requirements] = found
        return found


def placement(
    scaler: Scaler,
    index: HostIndex,
    current: Mapping[str, int],
    load: Mapping[str, int],
) -> tuple[dict[str, int], list[str]]:
    """Target replicas per host, and the reasons a part could not be placed."""
    spreads = scaler.spreads or (Spread(name="default"),)
    targets: dict[str, int] = {}
    reasons = []
    if scaler.kind == "daemon":
        for spread in spreads:
            for host in index.matching(spread):
                targets[host.host_id] = scaler.instances
        if not targets and scaler.instances > 0:
            reasons.append(f"no host matches {' or '.join(describe(s) for s in spreads)}")
        return targets, reasons
    shares = split_by_weight(scaler.instances, [s.weight for s in spreads])
    for spread, share in zip(spreads, shares, strict=True):
        matching = index.matching(spread)
        if share and not matching:
            reasons.append(f"no host matches {describe(spread)} ({share} replicas unplaced)")
            continue
        for host_id, n in spread_evenly(share, matching, current, load).items():
            targets[host_id] = targets.get(host_id, 0) + n
    return targets, reasons


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
        link_commands, link_keys, app_reasons = _links(app, observed, owners, named_config)
        commands.extend(link_commands)
        wanted_links |= link_keys
        component_states = list(_not_placed(app))
        busy = bool(link_commands)
        for decl in app.components:
            if decl.scaler is None:
                continue
            cid = component_id(app.name, decl.name)
            wanted_components.add(cid)
            missing = _missing_config(decl.config_names, named_config)
            if missing:
                reason = _missing_reason(missing)
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


def _missing_config(
    names: Sequence[str], named_config: Mapping[str, Mapping[str, str]] | None
) -> list[str]:
    if named_config is None:
        return []
    return [name for name in names if name not in named_config]


def _missing_reason(missing: Sequence[str]) -> str:
    listed = ", ".join(f"'{name}'" for name in missing)
    return f"named config {listed} is not stored (lattice config put NAME KEY=VALUE...)"


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
    _claim(load, targets, counts)
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


def _claim(load: dict[str, int], targets: Mapping[str, int], counts: Mapping[str, int]) -> None:
    """Count this placement in the hosts' load, so later ones prefer other hosts."""
    for host_id, target in targets.items():
        load[host_id] = load.get(host_id, 0) + target - counts.get(host_id, 0)


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
    _claim(load, targets, counts)
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


def _links(
    app: AppSpec,
    observed: Observed,
    owners: Mapping[RouteKey, str],
    named_config: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[list[PutLinkCommand], set[str], list[str]]:
    """The app's link commands, the keys of its links, and its route conflicts."""
    providers = {c.name: c.provider for c in app.capabilities}
    unsupported = {c.name for c in app.capabilities if not c.supported}
    commands = []
    keys = set()
    conflicts = []
    for decl in app.links:
        if decl.source in unsupported or decl.target in unsupported:
            continue  # reported on the capability's row
        names = (*decl.source_config_names, *decl.target_config_names)
        if names:
            missing = _missing_config(names, named_config or {})
            if missing:
                conflicts.append(f"link {decl.source} -> {decl.target}: {_missing_reason(missing)}")
                continue
            decl = _with_named_config(decl, named_config or {})
        if providers.get(decl.source) == HTTP_SERVER:
            route = route_key(dict(decl.source_config))
            owner = owners.get(route, app.name)
            if owner != app.name:
                conflicts.append(
                    f"{decl.target}: HTTP route {route} is owned by app '{owner}' "
                    "(choose another path or host)"
                )
                continue
            # HTTP routes: one link per target component, configured by the source side.
            target = component_id(app.name, decl.target)
            command = PutLinkCommand(
                HTTP_SERVER,
                target,
                decl.namespace,
                decl.package,
                decl.interfaces,
                target,
                decl.source_config,
                app.name,
            )
        else:
            source = component_id(app.name, decl.source)
            target = providers.get(decl.target) or component_id(app.name, decl.target)
            config = decl.target_config
            placed = placed_kind(target)
            if placed is not None and placed.serves is not None:
                # Calls go to the contract's remote backend, served by provider <app>--<name>.
                provider_id = component_id(app.name, decl.target)
                target = placed.serves
                config = tuple(sorted({**dict(config), "provider": provider_id}.items()))
            command = PutLinkCommand(
                source,
                target,
                decl.namespace,
                decl.package,
                decl.interfaces,
                decl.name,
                config,
                app.name,
            )
        keys.add(command.link_key)
        existing = observed.links.get(command.link_key)
        wanted = LinkView(
            command.link_key,
            command.target,
            command.interfaces,
            command.config,
            app.name,
            command.source_id,
        )
        if existing != wanted:
            commands.append(command)
    return commands, keys, conflicts


def _with_named_config(decl: LinkDecl, named: Mapping[str, Mapping[str, str]]) -> LinkDecl:
    """The link with its named configs layered under its inline config."""

    def layered(names: Sequence[str], inline: Pairs) -> Pairs:
        merged: dict[str, str] = {}
        for name in names:
            merged.update(named[name])
        return tuple(sorted({**merged, **dict(inline)}.items()))

    return replace(
        decl,
        source_config=layered(decl.source_config_names, decl.source_config),
        target_config=layered(decl.target_config_names, decl.target_config),
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
