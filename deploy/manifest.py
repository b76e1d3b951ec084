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

This module holds the public API and the normaliser (components, capabilities, scalers);
``deploy.manifest_links`` the link traits and the checks across them,
``deploy.manifest_config`` config and secrets.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from catalog.kinds import (
    BUILTIN_CAPABILITIES,
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
from deploy.locate import Loc, Locator, Report, parse_yaml, validate
from deploy.manifest_config import (
    SECRET_POLICY_TYPE,
    Pairs,
    merge_configs,
    refuse_named,
    refuse_secrets,
    secret_refs,
)
from deploy.manifest_links import (
    LinkAt,
    check_link_config_names,
    check_links,
    link_traits,
    take_provider_config,
)
from deploy.model import (
    UNSUPPORTED,
    AppSpec,
    CapabilityDecl,
    ComponentDecl,
    Scaler,
    Spread,
)
from deploy.names import new_version
from deploy.schema import (
    CapabilityProperties,
    ComponentEntry,
    ComponentProperties,
    Manifest,
    PolicyEntry,
    ScalerProperties,
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
_SCALERS = {"spreadscaler": "spread", "daemonscaler": "daemon"}
_TRAITS = (*_SCALERS, "link")


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
        links: list[LinkAt] = []
        for i, raw in enumerate(raws):
            loc: Loc = ("spec", "components", i)
            self._check_trait_types(raw, loc)
            links.extend(link_traits(self.report, raw, loc))
        check_link_config_names(self.report, links)
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
        check_links(self.report, links, kinds)
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
        secrets = secret_refs(self.report, props.secrets, (*ploc, "secrets"), self.policies)
        source = self._source(props.image, (*ploc, "image"))
        sha256 = props.sha256.removeprefix("sha256:").lower() if props.sha256 else None
        config, names = merge_configs([(props.config, (*ploc, "config"))])
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

    def _capability(
        self, raw: ComponentEntry, loc: Loc, links: list[LinkAt]
    ) -> tuple[list[CapabilityDecl], list[LinkAt]]:
        """The capability, and the links with config it took over (keyvalue-redis's url)."""
        ploc = (*loc, "properties")
        props = validate(self.report, CapabilityProperties, raw.properties, ploc)
        provider = self._provider(props, ploc) if props is not None else None
        placed = provider is not None and placed_kind(provider) is not None
        if not placed:
            self._scalers(raw, loc)  # validated, then ignored: built-in providers run everywhere
        if props is None or provider is None:
            return [], links
        refuse_secrets(self.report, props.secrets, (*ploc, "secrets"))
        config, names = merge_configs([(props.config, (*ploc, "config"))])
        refuse_named(self.report, names, (*ploc, "config"), "a capability's")
        image = props.image or "" if provider == UNSUPPORTED else ""  # kept to be reported
        if not placed:
            return [CapabilityDecl(raw.name, provider, config, image=image)], links
        scaler = self._component_scaler(raw, loc, "capability")
        config, links = take_provider_config(raw.name, provider, config, links)
        self._check_provider_config(provider, config, (*ploc, "config"))
        return [CapabilityDecl(raw.name, provider, config, scaler)], links

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
