"""The ``link`` traits of a wadm manifest, and the checks that take the whole app.

A link trait wires a source (a component, or an http-server or messaging capability) to
a target by interface: ``namespace``, ``package``, ``interfaces``, ``name``, ``target`` as
a name with older ``target_config`` or as ``{name, config}``, ``source.config`` or older
``source_config`` (one form per link). ``deploy.manifest`` collects every component's
links (``link_traits``), then checks them against each other and the app's components:

- link config names are unique across the manifest (``check_link_config_names``): a named
  config is one object in wasmCloud, so a second would overwrite the first;
- each link's ends (``check_links``): the target is a component of this app and not the
  source, a provider that calls no component is no source, an http-server link targets a
  wasm component and its source config routes as wasmCloud's do (``path`` prefix, ``host``
  header, ``address`` ``HOST:PORT``, alone or combined);
- links are unique by the key the controller gives them (an HTTP route by target
  component, other links by source, ``namespace:package`` and name), and HTTP routes of
  one app by path, Host and address.

A placed provider takes the keys wasmCloud puts in the target config of links to it
(keyvalue-redis's ``url``) from those links (``take_provider_config``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from catalog.kinds import HTTP_SERVER, KINDS
from deploy.errors import ManifestReferenceError, ManifestSchemaError, UnsupportedFeatureError
from deploy.interfaces import interface_warning
from deploy.locate import Loc, Report, validate
from deploy.manifest_config import Pairs, merge_configs, refuse_secrets
from deploy.model import LinkDecl
from deploy.names import route_key
from deploy.schema import ComponentEntry, LinkProperties, Trait


@dataclass(frozen=True)
class LinkAt:
    """A link as declared, with where it is in the manifest."""

    decl: LinkDecl
    loc: Loc  # of the trait
    # (name, location) of every config the link declares, named or inline.
    config_names: tuple[tuple[str, Loc], ...] = ()


def link_traits(report: Report, raw: ComponentEntry, loc: Loc) -> list[LinkAt]:
    """The component's ``link`` traits, validated and normalised (refused ones left out)."""
    links = []
    for j, trait in enumerate(raw.traits):
        if trait.type != "link":
            continue
        link = _link(report, raw.name, trait, (*loc, "traits", j))
        if link is not None:
            links.append(link)
    return links


def _link(report: Report, source: str, trait: Trait, tloc: Loc) -> LinkAt | None:
    ploc = (*tloc, "properties")
    props = validate(report, LinkProperties, trait.properties, ploc)
    if props is None:
        return None
    _check_link_forms(report, trait.properties, ploc)
    refuse_secrets(report, props.target.secrets, (*ploc, "target", "secrets"))
    refuse_secrets(report, props.source.secrets, (*ploc, "source", "secrets"))
    for k, interface in enumerate(props.interfaces):
        warning = interface_warning(props.namespace, props.package, interface)
        if warning:
            report.warn((*ploc, "interfaces", k), warning)
    target_configs = [
        (props.target.config, (*ploc, "target", "config")),
        (props.target_config, (*ploc, "target_config")),
    ]
    source_configs = [
        (props.source.config, (*ploc, "source", "config")),
        (props.source_config, (*ploc, "source_config")),
    ]
    target_config, target_names = merge_configs(target_configs)
    source_config, source_names = merge_configs(source_configs)
    decl = LinkDecl(
        source=source,
        target=props.target.name,
        namespace=props.namespace,
        package=props.package,
        interfaces=tuple(props.interfaces),
        name=props.name,
        source_config=source_config,
        target_config=target_config,
        source_config_names=source_names,
        target_config_names=target_names,
    )
    declared = tuple(
        (entry.name, (*cloc, k))
        for entries, cloc in (*target_configs, *source_configs)
        for k, entry in enumerate(entries)
    )
    return LinkAt(decl, tloc, declared)


def check_link_config_names(report: Report, links: Sequence[LinkAt]) -> None:
    """wadm refuses two link configs of one name anywhere in a manifest: a named config
    is one object in wasmCloud, so the second would overwrite the first."""
    first: dict[str, Loc] = {}
    for link in links:
        for name, loc in link.config_names:
            if name in first:
                line = report.line_of(first[name])
                message = f"duplicate link config name '{name}' (first at line {line})"
                report.add(ManifestReferenceError, (*loc, "name"), message)
            else:
                first[name] = loc


def _check_link_forms(report: Report, raw: dict[str, Any], ploc: Loc) -> None:
    """Older and current wadm spell link config differently; one link uses one form."""
    if isinstance(raw.get("target"), dict) and "target_config" in raw:
        message = "target_config goes with a target given as a name; use target.config"
        report.add(ManifestSchemaError, (*ploc, "target_config"), message)
    if "source" in raw and "source_config" in raw:
        message = "give source.config or source_config (older wadm), not both"
        report.add(ManifestSchemaError, (*ploc, "source_config"), message)


def check_links(report: Report, links: Sequence[LinkAt], kinds: dict[str, str]) -> None:
    first: dict[tuple[str, ...], Loc] = {}
    for link in links:
        if _check_link_ends(report, link, kinds):
            _check_unique_link(report, link, kinds, first)


def _check_link_ends(report: Report, link: LinkAt, kinds: dict[str, str]) -> bool:
    decl, tloc = link.decl, (*link.loc, "properties", "target")
    source_kind, target_kind = kinds.get(decl.source), kinds.get(decl.target)
    # A provider kind that calls no component (keyvalue, ...) is no link source.
    provider = KINDS.get(source_kind) if source_kind else None
    if target_kind is None:
        names = ", ".join(sorted(kinds))
        message = f"link target '{decl.target}' is not a component of this app ({names})"
        report.add(ManifestReferenceError, tloc, message)
    elif decl.target == decl.source:
        report.add(ManifestReferenceError, tloc, "a component cannot link to itself")
    elif provider is not None and not provider.calls:
        message = f"links from a {source_kind} capability are not supported"
        report.add(UnsupportedFeatureError, (*link.loc, "type"), message)
    elif source_kind == HTTP_SERVER and target_kind != "component":
        message = f"an http-server link must target a wasm component, not '{decl.target}'"
        report.add(ManifestReferenceError, tloc, message)
    elif source_kind == HTTP_SERVER:
        return _check_route(report, link)
    else:
        return source_kind is not None
    return False


def _check_route(report: Report, link: LinkAt) -> bool:
    """wasmCloud's three routing modes: ``path``, ``host``, ``address`` (a listener of its
    own); they combine."""
    config = dict(link.decl.source_config)
    path, address = config.get("path"), config.get("address")
    where = (*link.loc, "properties", "source")
    if path is not None and not path.startswith("/"):
        message = f"the HTTP route path '{path}' must start with '/'"
        report.add(ManifestSchemaError, where, message)
        return False
    if address is not None and not _LISTEN_ADDRESS.match(address.strip()):
        message = f"the HTTP address '{address}' must be HOST:PORT (0.0.0.0:8081, [::1]:8081)"
        report.add(ManifestSchemaError, where, message)
        return False
    return True


def _check_unique_link(
    report: Report, link: LinkAt, kinds: dict[str, str], first: dict[tuple[str, ...], Loc]
) -> None:
    """Two links with one lattice key would overwrite each other (keys as the controller
    makes them: HTTP routes are keyed by target component, other links by source,
    namespace:package and name)."""
    decl = link.decl
    if kinds.get(decl.source) == HTTP_SERVER:
        key: tuple[str, ...] = (HTTP_SERVER, decl.target)
        what = f"an HTTP route to '{decl.target}' is declared already (a component takes one)"
    else:
        key = (decl.source, decl.namespace, decl.package, decl.name)
        what = (
            f"'{decl.source}' has a {decl.namespace}:{decl.package} link named "
            f"'{decl.name}' already (give links distinct names)"
        )
    if key in first:
        line = report.line_of(first[key])
        message = f"duplicate link: {what}, at line {line}"
        report.add(ManifestReferenceError, link.loc, message)
        return
    first[key] = link.loc
    if kinds.get(decl.source) == HTTP_SERVER:
        # Every host serves one route table: one route, one component.
        route = route_key(dict(decl.source_config))
        claimed = ("route", str(route))
        if claimed in first:
            line = report.line_of(first[claimed])
            message = f"duplicate HTTP route {route}: declared already at line {line}"
            report.add(ManifestReferenceError, link.loc, message)
        else:
            first[claimed] = link.loc


def take_provider_config(
    capability: str, provider: str, config: Pairs, links: list[LinkAt]
) -> tuple[Pairs, list[LinkAt]]:
    """A placed provider's config in this project's keys: wasmCloud's names (aliases)
    renamed, and keys wasmCloud puts in the target config of links to the capability
    (keyvalue-redis's ``url``) taken from those links when the capability lacks them."""
    kind = KINDS[provider]
    names = {alias: key.name for key in kind.config for alias in (key.name, *key.aliases)}
    given = {names.get(key, key): value for key, value in config}
    taken = []
    for link in links:
        decl = link.decl
        if decl.target != capability:
            taken.append(link)
            continue
        kept = []
        for key, value in decl.target_config:
            if key in names and key not in dict(config):
                given.setdefault(names[key], value)
            else:
                kept.append((key, value))
        if len(kept) != len(decl.target_config):
            decl = replace(decl, target_config=tuple(kept))
        taken.append(replace(link, decl=decl))
    return tuple(sorted(given.items())), taken


# An http-server link's ``address``: host (a name, IPv4, or [IPv6]) and port.
_LISTEN_ADDRESS = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}"
    r"|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
)
