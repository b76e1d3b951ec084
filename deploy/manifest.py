"""Load wadm ``Application`` manifests (OAM YAML) into the normalised ``deploy.model``.

A user describes an app the way wasmCloud's wadm does: ``apiVersion: core.oam.dev/v1beta1``,
``kind: Application``, ``metadata`` (name, ``annotations.version``) and ``spec.components``,
each a ``component`` (a wasm component) or a ``capability`` (a provider), decorated with
``traits``: a ``spreadscaler`` or ``daemonscaler`` saying how many replicas run where, and
``link`` traits wiring a component's imports to a target. This module turns that text into
an :class:`~deploy.model.AppSpec` the controller can reconcile, or refuses it with every
problem located by line and field path (see ``deploy.errors``).

Loading runs in passes; a pass that finds problems raises all of them, so each pass only
sees what the earlier ones accepted:

1. YAML is composed into a node tree (which keeps line numbers), checked for duplicate
   keys, then constructed into plain data (``ManifestSyntaxError``).
2. The overall shape is validated with pydantic models of wadm's manifest
   (``ManifestSchemaError``); a pydantic error location such as
   ``('spec', 'components', 1, 'traits', 0, 'properties', 'instances')`` is walked down
   the node tree to find its line.
3. Each component's ``properties`` and each trait's ``properties`` are validated with the
   model of its ``type`` (``ManifestSchemaError``) and normalised; cross-checks (names,
   link targets, scalers, sources, providers) add ``ManifestReferenceError`` and
   ``UnsupportedFeatureError`` problems.

What is accepted, warned about, ignored and refused (*ext* marks this project's
extensions), as wadm's own validation defines it:

- accepted: ``apiVersion``, ``kind``, ``metadata.name`` (a name as ``deploy.names`` says:
  lowercase letters, digits, single '-'), ``metadata.annotations`` (``version`` optional:
  without one, ``lattice apply`` generates a sortable one, ``deploy.names.new_version``;
  ``description``, others kept); component ``name`` (a name, as the app's), ``type``
  (``component``, older ``actor``, ``capability``), ``properties.image`` and
  ``properties.config`` (a named config without ``properties`` is one stored on the
  lattice with ``lattice config put``, referenced by name: a missing one is reported in
  the app's status, not here); component ``secrets`` (wadm's ``{name, properties:
  {policy, key, field, version}}``, the policy a ``policy.secret.wasmcloud.dev/v1alpha1``
  entry of ``spec.policies`` with a ``backend``): config key ``name`` gets the lattice
  secret ``key`` (``lattice secret put``) when a host starts the component; *ext*
  component ``sha256`` and ``max_concurrency``, capability ``provider`` (then ``image``
  may be left out; ``provider: keyvalue-redis`` is a provider process the controller
  places with the capability's scaler, one per host, config ``redis_url`` (wasmCloud's
  ``url``, also taken from the target config of links to it) and ``key_prefix``);
  traits ``spreadscaler``/``daemonscaler`` (``instances`` or older ``replicas``,
  ``spread[].name``/``requirements``/``weight``) and ``link`` (``namespace``, ``package``,
  ``interfaces``, ``name``, ``target`` as a name with older ``target_config`` or as
  ``{name, config}``, ``source.config`` or older ``source_config``; an http-server
  link's source config routes as wasmCloud's do: ``path`` (prefix), ``host`` (Host
  header), ``address`` (``HOST:PORT``: a listener of its own on each host running the
  component), alone or combined); several links on one interface when their names
  differ; a component (or placed capability) without a scaler: declared, not placed
  (the status says so).
- warnings (returned with the spec, printed by ``lattice apply`` and ``lattice app
  validate``): an unknown package under a namespace wadm knows or an unknown interface
  of a known package (``deploy.interfaces``), an unknown trait type (ignored).
- capability images: wasmCloud's first-party provider images map onto this project's
  providers (``catalog.kinds.FIRST_PARTY_IMAGES``), whatever the registry host; an image
  with no counterpart passes (wadm cannot judge images either) and is reported by the
  controller in the app's status, the rest of the app deploying.
- ignored (validated, then dropped): ``metadata.labels``, ``properties.id`` (component
  ids are ``<app>--<name>`` here, but duplicates are refused as in wadm), scalers on
  built-in capabilities (they run on every host); a ``daemonscaler``'s spread weights
  are kept but mean nothing (every matching host gets ``instances``).
- component images: a file path (relative to the spec), a ``file://`` or http(s) URL, an
  OCI reference (``registry/repo:tag`` or ``@sha256:...``) or a lattice object
  (``nats-object://sha256:...``); see ``deploy.sources``.
- refused (errors, with file:line): unknown fields, duplicate component names, duplicate
  component ids, duplicate links, duplicate link config names (across the manifest, as
  in wadm), dangling link targets, secrets whose policy is missing or not a secret
  policy, secrets on capabilities and links, links from a keyvalue capability, two
  scalers on one component, two HTTP routes of one app with the same path, Host and address, a
  manifest beyond the bounds of ``deploy.locate`` (size, nesting, values).

Config values are strings in wadm; YAML numbers and booleans are accepted and turned
into strings (``true``/``false`` for booleans). Inline configs are merged, a later name
winning, into the one flat mapping the model holds; named ones are kept by name and
layered under it where they are resolved.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from catalog.kinds import (
    BUILTIN_CAPABILITIES,
    HTTP_SERVER,
    KINDS,
    kind_of_image,
    placed_kind,
)
from deploy.dump import dump_spec, pairs, spec_from_dump
from deploy.errors import (
    ManifestError,
    ManifestFileError,
    ManifestReferenceError,
    ManifestSchemaError,
    Problem,
    UnsupportedFeatureError,
)
from deploy.interfaces import interface_warning
from deploy.locate import Loc, Locator, Report, parse_yaml, validate
from deploy.model import (
    UNSUPPORTED,
    AppSpec,
    CapabilityDecl,
    ComponentDecl,
    LinkDecl,
    Scaler,
    SecretRef,
    Spread,
)
from deploy.names import new_version, route_key
from deploy.schema import (
    CapabilityProperties,
    ComponentEntry,
    ComponentProperties,
    ConfigProperty,
    LinkProperties,
    Manifest,
    PolicyEntry,
    ScalerProperties,
    SecretEntry,
    Trait,
    validate_top,
)
from deploy.sources import ObjectSource, OciSource, UnknownScheme, UrlSource, classify

__all__ = [
    "API_VERSION",
    "KIND",
    "PROVIDERS",
    "SECRET_POLICY_TYPE",
    "Checked",
    "check_manifest",
    "check_manifest_file",
    "dump_spec",
    "load_manifest",
    "load_manifest_file",
    "spec_digest",
    "spec_from_dump",
]

API_VERSION = "core.oam.dev/v1beta1"
KIND = "Application"
# The built-in providers a capability may name (by image or properties.provider).
PROVIDERS = BUILTIN_CAPABILITIES
# The policy type wadm gives secret backends (``spec.policies``).
SECRET_POLICY_TYPE = "policy.secret.wasmcloud.dev/v1alpha1"
_SCALERS = {"spreadscaler": "spread", "daemonscaler": "daemon"}
_TRAITS = (*_SCALERS, "link")
Pairs = tuple[tuple[str, str], ...]


# -- public API -----------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """A manifest that loaded: its spec, and what wadm would warn about (in line order)."""

    spec: AppSpec
    warnings: tuple[Problem, ...] = ()


def check_manifest(
    text: str,
    source: str = "<spec>",
    *,
    base_dir: str | Path | None = None,
    version: str | None = None,
) -> Checked:
    """Parse and validate a wadm manifest; relative component paths resolve against
    ``base_dir`` (kept as written when it is None). A manifest without a version takes
    ``version`` (a stored spec's), else a newly generated one. Raises a ``ManifestError``."""
    root, data = parse_yaml(text, source)
    report = Report(source, Locator(root))
    manifest = validate_top(report, data)
    report.raise_if_any()
    assert manifest is not None
    base = Path(base_dir) if base_dir is not None else None
    spec = _Normaliser(report, base, version).app(manifest)
    report.raise_if_any()
    return Checked(spec, tuple(sorted(report.warnings, key=lambda p: p.line or 0)))


def load_manifest(
    text: str,
    source: str = "<spec>",
    *,
    base_dir: str | Path | None = None,
    version: str | None = None,
) -> AppSpec:
    """``check_manifest``'s spec (warnings dropped)."""
    return check_manifest(text, source, base_dir=base_dir, version=version).spec


def check_manifest_file(path: str | os.PathLike[str]) -> Checked:
    """Check a manifest file; relative component paths resolve against its directory."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problem = Problem(f"cannot read the manifest: {e}", source=str(path))
        raise ManifestFileError([problem]) from e
    return check_manifest(text, str(path), base_dir=Path(path).resolve().parent)


def load_manifest_file(path: str | os.PathLike[str]) -> AppSpec:
    return check_manifest_file(path).spec


def spec_digest(text: str) -> str:
    """sha256 of a manifest's text: tells whether two stored specs are the same text."""
    return hashlib.sha256(text.encode()).hexdigest()


# -- normalisation and cross-checks ---------------------------------------------------


@dataclass(frozen=True)
class _LinkAt:
    decl: LinkDecl
    loc: Loc  # of the trait
    # (name, location) of every config the link declares, named or inline.
    config_names: tuple[tuple[str, Loc], ...] = ()


class _Normaliser:
    def __init__(self, report: Report, base_dir: Path | None, version: str | None) -> None:
        self.report = report
        self.base_dir = base_dir
        self.version = version
        self.policies: dict[str, PolicyEntry] = {}

    def app(self, manifest: Manifest) -> AppSpec:
        raws = manifest.spec.components
        self.policies = {policy.name: policy for policy in manifest.spec.policies}
        self._check_unique_names(raws)
        self._check_unique_ids(raws)
        links: list[_LinkAt] = []
        for i, raw in enumerate(raws):
            loc: Loc = ("spec", "components", i)
            self._check_trait_types(raw, loc)
            links.extend(self._links(raw, loc))
        self._check_link_config_names(links)
        components: list[ComponentDecl] = []
        capabilities: list[CapabilityDecl] = []
        for i, raw in enumerate(raws):
            loc = ("spec", "components", i)
            if raw.type == "capability":
                found, links = self._capability(raw, loc, links)
                capabilities.extend(found)
            else:
                components.extend(self._component(raw, loc))
        kinds = {raw.name: "component" for raw in raws if raw.type != "capability"}
        kinds |= {raw.name: "capability" for raw in raws if raw.type == "capability"}
        kinds |= {c.name: c.provider for c in capabilities}
        self._check_links(links, kinds)
        annotations = manifest.metadata.annotations
        return AppSpec(
            name=manifest.metadata.name,
            version=annotations.version or self.version or new_version(),
            components=tuple(components),
            capabilities=tuple(capabilities),
            links=tuple(link.decl for link in links),
            description=annotations.description,
            annotations=pairs(annotations.model_dump(exclude_unset=True)),
        )

    def _problem(self, kind: type[ManifestError], loc: Loc, message: str) -> None:
        self.report.add(kind, loc, message)

    def _check_unique_names(self, raws: Sequence[ComponentEntry]) -> None:
        first: dict[str, int] = {}
        for i, raw in enumerate(raws):
            loc: Loc = ("spec", "components", i, "name")
            if raw.name in first:
                line = self.report.line_of(("spec", "components", first[raw.name], "name"))
                message = f"duplicate component name '{raw.name}' (first at line {line})"
                self._problem(ManifestReferenceError, loc, message)
            else:
                first[raw.name] = i

    def _check_unique_ids(self, raws: Sequence[ComponentEntry]) -> None:
        """``properties.id`` is ignored here (ids are ``<app>--<name>``), but wadm refuses
        two components with one id, so a manifest wadm refuses is refused here too."""
        first: dict[str, int] = {}
        for i, raw in enumerate(raws):
            ident = raw.properties.get("id") if isinstance(raw.properties, dict) else None
            if not isinstance(ident, str):
                continue
            loc: Loc = ("spec", "components", i, "properties", "id")
            if ident in first:
                line = self.report.line_of(("spec", "components", first[ident], "properties", "id"))
                message = f"duplicate component id '{ident}' (first at line {line})"
                self._problem(ManifestReferenceError, loc, message)
            else:
                first[ident] = i

    # components and capabilities

    def _component(self, raw: ComponentEntry, loc: Loc) -> list[ComponentDecl]:
        ploc = (*loc, "properties")
        props = validate(self.report, ComponentProperties, raw.properties, ploc)
        scaler = self._component_scaler(raw, loc)
        if props is None:
            return []
        secrets = self._secrets(props.secrets, (*ploc, "secrets"))
        source = self._source(props.image, (*ploc, "image"))
        sha256 = props.sha256.removeprefix("sha256:").lower() if props.sha256 else None
        config, names = self._configs([(props.config, (*ploc, "config"))])
        if source is None:
            return []
        return [
            ComponentDecl(
                raw.name,
                source,
                sha256,
                config,
                scaler,
                props.max_concurrency,
                config_names=names,
                secrets=secrets,
            )
        ]

    def _secrets(self, entries: Sequence[SecretEntry], loc: Loc) -> tuple[SecretRef, ...]:
        """wadm's secret references, each mapped to a secret policy of the manifest."""
        refs = []
        seen: set[str] = set()
        for k, entry in enumerate(entries):
            where = (*loc, k)
            policy_name = entry.properties.policy
            policy = self.policies.get(policy_name)
            if entry.name in seen:
                self._problem(ManifestReferenceError, where, f"duplicate secret '{entry.name}'")
            elif policy is None:
                message = f"secret '{entry.name}' is mapped to unknown policy '{policy_name}'"
                self._problem(ManifestReferenceError, (*where, "properties", "policy"), message)
            elif policy.type != SECRET_POLICY_TYPE:
                message = (
                    f"secret '{entry.name}' is mapped to policy '{policy_name}', which is not "
                    f"a secret policy (type {SECRET_POLICY_TYPE})"
                )
                self._problem(ManifestReferenceError, (*where, "properties", "policy"), message)
            elif "backend" not in policy.properties:
                message = f"policy '{policy_name}' of secret '{entry.name}' has no 'backend'"
                self._problem(ManifestReferenceError, (*where, "properties", "policy"), message)
            seen.add(entry.name)
            props = entry.properties
            refs.append(SecretRef(entry.name, props.key, props.field, policy_name))
        return tuple(refs)

    def _capability(
        self, raw: ComponentEntry, loc: Loc, links: list[_LinkAt]
    ) -> tuple[list[CapabilityDecl], list[_LinkAt]]:
        """The capability, and the links with config it took over (keyvalue-redis's url)."""
        ploc = (*loc, "properties")
        props = validate(self.report, CapabilityProperties, raw.properties, ploc)
        provider = self._provider(props, ploc) if props is not None else None
        placed = provider is not None and placed_kind(provider) is not None
        if not placed:
            self._scalers(raw, loc)  # validated, then ignored: built-in providers run everywhere
        if props is None or provider is None:
            return [], links
        self._refuse_secrets(props.secrets, (*ploc, "secrets"))
        config, names = self._configs([(props.config, (*ploc, "config"))])
        self._refuse_named(names, (*ploc, "config"), "a capability's")
        image = props.image or "" if provider == UNSUPPORTED else ""  # kept to be reported
        if not placed:
            return [CapabilityDecl(raw.name, provider, config, image=image)], links
        scaler = self._component_scaler(raw, loc, "capability")
        config, links = _take_provider_config(raw.name, provider, config, links)
        self._check_provider_config(provider, config, (*ploc, "config"))
        return [CapabilityDecl(raw.name, provider, config, scaler)], links

    def _refuse_named(self, names: Sequence[str], loc: Loc, whose: str) -> None:
        for name in names:
            message = (
                f"config '{name}' has no properties: {whose} config is given here, not "
                "by name (named config on the lattice is for components and links)"
            )
            self._problem(UnsupportedFeatureError, loc, message)

    def _check_provider_config(self, provider: str, config: Pairs, loc: Loc) -> None:
        kind = KINDS[provider]
        required, optional = kind.required_config, kind.optional_config
        given = dict(config)
        for key in required:
            if not given.get(key):
                message = f"a {provider} provider needs config '{key}'"
                self._problem(ManifestReferenceError, loc, message)
        for key in sorted(set(given) - {*required, *optional}):
            known = ", ".join((*required, *optional))
            message = f"unknown config '{key}' for a {provider} provider (known: {known})"
            self._problem(ManifestReferenceError, loc, message)

    def _provider(self, props: CapabilityProperties, ploc: Loc) -> str | None:
        """The capability's kind; ``UNSUPPORTED`` for an image with no counterpart (the
        controller reports it; wadm cannot judge images either)."""
        named = kind_of_image(props.image) if props.image else None
        if props.provider is None and named is None:
            return UNSUPPORTED
        if props.provider and named and props.provider != named:
            message = f"image '{props.image}' names {named}, but provider is {props.provider}"
            self._problem(ManifestReferenceError, (*ploc, "provider"), message)
            return None
        return props.provider or named

    def _source(self, image: str, loc: Loc) -> str | None:
        """The component's source as the host loader takes it, or None (refused)."""
        source = classify(image, self.base_dir)
        if isinstance(source, UnknownScheme):
            message = f"unsupported URL scheme '{source.scheme}://': {source.hint}"
            self._problem(UnsupportedFeatureError, loc, message)
            return None
        if isinstance(source, OciSource):
            return str(source.reference)
        if isinstance(source, ObjectSource):
            return str(source)
        if isinstance(source, UrlSource):
            return source.url
        return source.path

    @staticmethod
    def _configs(
        configs: Iterable[tuple[list[ConfigProperty], Loc]],
    ) -> tuple[Pairs, tuple[str, ...]]:
        """Inline configs merged into one mapping (a later name wins), as sorted pairs;
        and the names of configs given without properties (stored on the lattice)."""
        merged: dict[str, str] = {}
        names: list[str] = []
        for entries, _ in configs:
            for entry in entries:
                if entry.properties is None:
                    names.append(entry.name)
                else:
                    merged.update(entry.properties)
        return tuple(sorted(merged.items())), tuple(names)

    def _refuse_secrets(self, secrets: list[Any], loc: Loc) -> None:
        if secrets:
            self._problem(UnsupportedFeatureError, loc, "secrets are not supported")

    # traits

    @staticmethod
    def _traits(raw: ComponentEntry, loc: Loc, wanted: Iterable[str]) -> list[tuple[Trait, Loc]]:
        """The component's traits of the ``wanted`` types, with their locations."""
        wanted = set(wanted)
        return [(t, (*loc, "traits", j)) for j, t in enumerate(raw.traits) if t.type in wanted]

    def _check_trait_types(self, raw: ComponentEntry, loc: Loc) -> None:
        """An unknown trait type is a warning naming it (wadm keeps custom traits)."""
        for j, trait in enumerate(raw.traits):
            if trait.type in _TRAITS:
                continue
            known = ", ".join(sorted(_TRAITS))
            message = f"unknown trait type '{trait.type}' is ignored (known: {known})"
            if trait.type == "linkdef":
                message += "; linkdef is older wadm's link: use link (namespace/package/interfaces)"
            self.report.warn((*loc, "traits", j, "type"), message)

    def _scalers(self, raw: ComponentEntry, loc: Loc) -> list[Scaler]:
        found = (self._scaler(trait, tloc) for trait, tloc in self._traits(raw, loc, _SCALERS))
        return [scaler for scaler in found if scaler is not None]

    def _scaler(self, trait: Trait, tloc: Loc) -> Scaler | None:
        ploc = (*tloc, "properties")
        props = validate(self.report, ScalerProperties, trait.properties, ploc)
        if props is None:
            return None
        kind = _SCALERS[trait.type]
        spreads = tuple(
            Spread(s.name, tuple(sorted(s.requirements.items())), s.weight) for s in props.spread
        )
        if kind == "spread" and spreads and not any(s.weight for s in spreads):
            message = "every spread has weight 0: at least one needs a positive weight"
            self._problem(ManifestSchemaError, (*ploc, "spread"), message)
        return Scaler(kind, props.count, spreads)

    def _component_scaler(
        self, raw: ComponentEntry, loc: Loc, what: str = "component"
    ) -> Scaler | None:
        scalers = self._scalers(raw, loc)
        declared = [(*loc, "traits", j) for j, t in enumerate(raw.traits) if t.type in _SCALERS]
        # None declared: accepted, not placed (as in wadm); the app's status says so.
        for extra in declared[1:]:
            message = f"more than one scaler: a {what} takes one spreadscaler or daemonscaler"
            self._problem(ManifestReferenceError, (*extra, "type"), message)
        return scalers[0] if len(declared) == 1 and scalers else None

    # links

    def _links(self, raw: ComponentEntry, loc: Loc) -> list[_LinkAt]:
        links = []
        for trait, tloc in self._traits(raw, loc, ("link",)):
            link = self._link(raw.name, trait, tloc)
            if link is not None:
                links.append(link)
        return links

    def _link(self, source: str, trait: Trait, tloc: Loc) -> _LinkAt | None:
        ploc = (*tloc, "properties")
        props = validate(self.report, LinkProperties, trait.properties, ploc)
        if props is None:
            return None
        self._check_link_forms(trait.properties, ploc)
        self._refuse_secrets(props.target.secrets, (*ploc, "target", "secrets"))
        self._refuse_secrets(props.source.secrets, (*ploc, "source", "secrets"))
        for k, interface in enumerate(props.interfaces):
            warning = interface_warning(props.namespace, props.package, interface)
            if warning:
                self.report.warn((*ploc, "interfaces", k), warning)
        target_configs = [
            (props.target.config, (*ploc, "target", "config")),
            (props.target_config, (*ploc, "target_config")),
        ]
        source_configs = [
            (props.source.config, (*ploc, "source", "config")),
            (props.source_config, (*ploc, "source_config")),
        ]
        target_config, target_names = self._configs(target_configs)
        source_config, source_names = self._configs(source_configs)
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
        return _LinkAt(decl, tloc, declared)

    def _check_link_config_names(self, links: Sequence[_LinkAt]) -> None:
        """wadm refuses two link configs of one name anywhere in a manifest: a named config
        is one object in wasmCloud, so the second would overwrite the first."""
        first: dict[str, Loc] = {}
        for link in links:
            for name, loc in link.config_names:
                if name in first:
                    line = self.report.line_of(first[name])
                    message = f"duplicate link config name '{name}' (first at line {line})"
                    self._problem(ManifestReferenceError, (*loc, "name"), message)
                else:
                    first[name] = loc

    def _check_link_forms(self, raw: dict[str, Any], ploc: Loc) -> None:
        """Older and current wadm spell link config differently; one link uses one form."""
        if isinstance(raw.get("target"), dict) and "target_config" in raw:
            message = "target_config goes with a target given as a name; use target.config"
            self._problem(ManifestSchemaError, (*ploc, "target_config"), message)
        if "source" in raw and "source_config" in raw:
            message = "give source.config or source_config (older wadm), not both"
            self._problem(ManifestSchemaError, (*ploc, "source_config"), message)

    def _check_links(self, links: Sequence[_LinkAt], kinds: dict[str, str]) -> None:
        first: dict[tuple[str, ...], Loc] = {}
        for link in links:
            if self._check_link_ends(link, kinds):
                self._check_unique_link(link, kinds, first)

    def _check_link_ends(self, link: _LinkAt, kinds: dict[str, str]) -> bool:
        decl, tloc = link.decl, (*link.loc, "properties", "target")
        source_kind, target_kind = kinds.get(decl.source), kinds.get(decl.target)
        # A provider kind that calls no component (keyvalue, ...) is no link source.
        provider = KINDS.get(source_kind) if source_kind else None
        if target_kind is None:
            names = ", ".join(sorted(kinds))
            message = f"link target '{decl.target}' is not a component of this app ({names})"
            self._problem(ManifestReferenceError, tloc, message)
        elif decl.target == decl.source:
            self._problem(ManifestReferenceError, tloc, "a component cannot link to itself")
        elif provider is not None and not provider.calls:
            message = f"links from a {source_kind} capability are not supported"
            self._problem(UnsupportedFeatureError, (*link.loc, "type"), message)
        elif source_kind == HTTP_SERVER and target_kind != "component":
            message = f"an http-server link must target a wasm component, not '{decl.target}'"
            self._problem(ManifestReferenceError, tloc, message)
        elif source_kind == HTTP_SERVER:
            return self._check_route(link)
        else:
            return source_kind is not None
        return False

    def _check_route(self, link: _LinkAt) -> bool:
        """wasmCloud's three routing modes: ``path``, ``host``, ``address`` (a listener of its
        own); they combine."""
        config = dict(link.decl.source_config)
        path, address = config.get("path"), config.get("address")
        where = (*link.loc, "properties", "source")
        if path is not None and not path.startswith("/"):
            message = f"the HTTP route path '{path}' must start with '/'"
            self._problem(ManifestSchemaError, where, message)
            return False
        if address is not None and not _LISTEN_ADDRESS.match(address.strip()):
            message = f"the HTTP address '{address}' must be HOST:PORT (0.0.0.0:8081, [::1]:8081)"
            self._problem(ManifestSchemaError, where, message)
            return False
        return True

    def _check_unique_link(
        self, link: _LinkAt, kinds: dict[str, str], first: dict[tuple[str, ...], Loc]
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
            line = self.report.line_of(first[key])
            message = f"duplicate link: {what}, at line {line}"
            self._problem(ManifestReferenceError, link.loc, message)
            return
        first[key] = link.loc
        if kinds.get(decl.source) == HTTP_SERVER:
            # Every host serves one route table: one route, one component.
            route = route_key(dict(decl.source_config))
            claimed = ("route", str(route))
            if claimed in first:
                line = self.report.line_of(first[claimed])
                message = f"duplicate HTTP route {route}: declared already at line {line}"
                self._problem(ManifestReferenceError, link.loc, message)
            else:
                first[claimed] = link.loc


def _take_provider_config(
    capability: str, provider: str, config: Pairs, links: list[_LinkAt]
) -> tuple[Pairs, list[_LinkAt]]:
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
