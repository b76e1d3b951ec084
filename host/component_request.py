"""From a scale request to what the runtime runs: a pure mapping.

A ``ScaleComponent`` request says which component to run and how many replicas;
the links in the lattice say what its imports reach and which HTTP routes lead
to it; named config supplies values. ``plan_component`` turns all of that into
the runtime's ``ComponentSpec`` plus the HTTP routes, and does nothing else: no
NATS, no runtime, no clock. The daemon reads the links and named config, calls
it, then acts on the result (``host.daemon.HostDaemon.apply``).

The rules, in one place:

- **limits**: up to ``max_concurrency`` instances (default
  ``DEFAULT_MAX_CONCURRENCY``), never fewer than the replicas asked for;
  the request's deadline and memory cap per call.
- **config**: the named configs in the order the request lists them, then the
  request's own values, then its secrets (opened by the daemon); a later layer wins.
- **links from the component**: to a provider kind (``keyvalue``...) they bind
  the provider's interfaces, with the link's config; ``provider=X`` on a
  keyvalue link sends calls to the out-of-process provider X. A keyvalue link
  naming a bucket that is ``reserved`` (the lattice's own) is refused. To another
  component, each interface becomes an import served by that component.
- **links to the component** from the http-server are its routes, as
  wasmCloud's: config ``path`` (prefix, default ``/``), optional ``host``, and
  optional ``address`` (``HOST:PORT``): a route with an address is served by a
  listener of its own on that address (``providers.http_listeners``), one
  without on the host's main listener. Both contracts' links (``wasi:http`` or
  ``wasmlattice:http`` ``incoming-handler``) route alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from catalog.kinds import HTTP_SERVER, KEYVALUE
from host.errors import MissingConfig
from host.runtime.components import ComponentSpec, LinkSpec
from host.runtime.pool import Limits
from lattice.messages import Link, ScaleComponent
from lattice.subjects import check_token
from providers import contracts
from providers.config_provider import merge_config
from providers.http_server import Route
from providers.keyvalue import check_buckets
from providers.remote import remote_backend_name

# Instances are created lazily up to this many concurrent calls per component.
DEFAULT_MAX_CONCURRENCY = 4
# The source id of links that route HTTP to a component.


@dataclass(frozen=True)
class ComponentPlan:
    """What a host does for one scale request with count > 0."""

    spec: ComponentSpec
    routes: tuple[Route, ...]  # on the host's main listener
    # (address, route): on a listener of its own at that address
    address_routes: tuple[tuple[str, Route], ...]
    # Out-of-process keyvalue providers the spec's links call (each needs a backend
    # named ``providers.remote.remote_backend_name(id)`` in the runtime).
    remote_providers: tuple[str, ...]


def plan_component(
    request: ScaleComponent,
    links: Sequence[Link],
    links_in: Sequence[Link],
    named_config: Mapping[str, Mapping[str, str]],
    *,
    reserved: Callable[[str], bool],
    secrets: Mapping[str, str] | None = None,
) -> ComponentPlan:
    """The spec and routes of ``request``, given the links from and to its component.

    ``named_config`` holds the values of (at least) every name in
    ``request.config_names``; a name without values raises ``MissingConfig``.
    ``reserved`` says which buckets no keyvalue link may name (``Subjects.owns_bucket``);
    naming one raises ``ValueError``.
    """
    component_id = request.component_id
    provider_links = [link for link in links if link.target in contracts.PROVIDER_INTERFACES]
    for link in provider_links:
        if link.target == "keyvalue":
            check_buckets(link.config, reserved)
    link_specs = tuple(_provider_link(link) for link in provider_links)
    spec = ComponentSpec(
        component_id=component_id,
        source=request.source,
        sha256=request.sha256,
        limits=request_limits(request),
        replicas=request.count,
        config=_layered_config(request, named_config, secrets or {}),
        links=link_specs,
        component_links=component_links(links),
    )
    routes, address_routes = [], []
    for link in links_in:
        if link.source_id != HTTP_SERVER:
            continue
        route = Route(component_id, link.config.get("path", "/"), link.config.get("host") or None)
        address = (link.config.get("address") or "").strip()
        if address:
            address_routes.append((address, route))
        else:
            routes.append(route)
    remote = sorted({link.config["provider"] for link in provider_links if _remote(link)})
    return ComponentPlan(spec, tuple(routes), tuple(address_routes), tuple(remote))


def request_limits(request: ScaleComponent) -> Limits:
    """Instances: as many as asked for at least, else up to max_concurrency (or the default)."""
    return Limits(
        max_concurrency=max(request.count, request.max_concurrency or DEFAULT_MAX_CONCURRENCY),
        deadline_s=request.deadline_s,
        memory_bytes=request.memory_mb * 2**20,
    )


def component_links(links: Sequence[Link]) -> tuple[tuple[str, str], ...]:
    """(interface, target component) for links whose target is another component."""
    pairs = []
    for link in links:
        if link.target in contracts.PROVIDER_INTERFACES or link.target == HTTP_SERVER:
            continue
        for interface in link.interfaces:
            pairs.append((f"{link.namespace}:{link.package}/{interface}", link.target))
    return tuple(sorted(pairs))


def _layered_config(
    request: ScaleComponent,
    named_config: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, str],
) -> dict[str, str]:
    layers = []
    for name in request.config_names:
        values = named_config.get(name)
        if values is None:
            raise MissingConfig(request.component_id, name)
        layers.append(values)
    layers.append(request.config)
    layers.append(secrets)
    return merge_config(layers)


def _remote(link: Link) -> bool:
    return link.target == KEYVALUE and bool(link.config.get("provider"))


def _provider_link(link: Link) -> LinkSpec:
    if not _remote(link):
        return LinkSpec(link.target, dict(link.config))
    # keyvalue config provider=X: calls go to out-of-process provider X, through the
    # runtime's backend provider:X (a RemoteKeyValue, see providers/remote.py).
    provider_id = check_token("provider id", link.config["provider"])
    return LinkSpec(link.target, {**link.config, "backend": remote_backend_name(provider_id)})
