"""An app's links as lattice link commands, and who owns each HTTP route. Purely computational.

``controller.reconcile`` asks, per app, for the link commands to send and the keys of
the links the app wants (a controller-made link no app wants is deleted there):

- A link between two components of the app links their scoped ids
  (``deploy.names.scoped_id``). A link to a placed provider becomes a link to the
  contract the provider serves, with ``provider=<id>`` in its config, so calls go to
  whichever host runs the provider. Links to or from a capability with no counterpart
  here are left out (the capability's status row says why).
- An http-server link is an HTTP route: one link per target component, configured by
  its source config (path prefix, Host, address; ``deploy.names.route_key``). A route
  has one owner app (``route_owners``): the app whose route link is in the lattice
  already, else the first claimant by name. Another app claiming it gets no link for
  it, and a reason naming the owner in its status (it never takes it over).
- Named configs a link names are resolved and layered under its inline config
  (``controller.named_config``); a missing one leaves the link out, with a reason.
- A link already in the lattice as wanted is not sent again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from catalog.kinds import HTTP_SERVER, placed_kind
from controller.commands import PutLinkCommand
from controller.model import LinkView, Observed
from controller.named_config import missing_config, missing_reason, with_named_config
from deploy.model import AppSpec
from deploy.names import RouteKey, route_key, routes, scoped_id


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


def link_commands(
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
            missing = missing_config(names, named_config or {})
            if missing:
                conflicts.append(f"link {decl.source} -> {decl.target}: {missing_reason(missing)}")
                continue
            decl = with_named_config(decl, named_config or {})
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
            target = scoped_id(app.name, decl.target)
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
            source = scoped_id(app.name, decl.source)
            target = providers.get(decl.target) or scoped_id(app.name, decl.target)
            config = decl.target_config
            placed = placed_kind(target)
            if placed is not None and placed.serves is not None:
                # Calls go to the contract's remote backend, served by provider <app>--<name>.
                provider_id = scoped_id(app.name, decl.target)
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
