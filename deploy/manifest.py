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

What is accepted, ignored and refused (*ext* marks this project's extensions):

- accepted: ``apiVersion``, ``kind``, ``metadata.name`` (a lattice token: letters, digits,
  '-', '_'), ``metadata.annotations`` (``version`` required, ``description``, others kept);
  component ``name`` (a lattice token), ``type`` (``component``, older ``actor``,
  ``capability``), ``properties.image`` and ``properties.config``; *ext* component
  ``sha256`` and ``max_concurrency``, capability ``provider`` (then ``image`` may be left
  out); traits ``spreadscaler``/``daemonscaler`` (``instances`` or older ``replicas``,
  ``spread[].name``/``requirements``/``weight``) and ``link`` (``namespace``, ``package``,
  ``interfaces``, ``name``, ``target`` as a name with older ``target_config`` or as
  ``{name, config}``, ``source.config`` or older ``source_config``).
- ignored (validated, then dropped): ``spec.policies``, ``metadata.labels``,
  ``properties.id`` (component ids are ``<app>-<name>`` here), scalers on capabilities
  (built-in providers run on every host); a ``daemonscaler``'s spread weights are kept
  but mean nothing (every matching host gets ``instances``), so they are not checked.
- refused: unknown fields and trait types, OCI image references (no registry client),
  capabilities other than the built-in http-server and keyvalue providers, ``secrets``,
  a named config without ``properties`` (wadm's config managed outside the manifest),
  links from a keyvalue capability, a manifest without a scaler on a component.

Config values are strings in wadm; YAML numbers and booleans are accepted and turned
into strings (``true``/``false`` for booleans). Named configs are merged, a later name
winning, into the one flat mapping the model holds.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from deploy.errors import (
    ManifestError,
    ManifestFileError,
    ManifestReferenceError,
    ManifestSchemaError,
    ManifestSyntaxError,
    Problem,
    UnsupportedFeatureError,
)
from deploy.model import (
    AppSpec,
    CapabilityDecl,
    ComponentDecl,
    LinkDecl,
    Scaler,
    Spread,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "PROVIDERS",
    "dump_spec",
    "load_manifest",
    "load_manifest_file",
    "spec_digest",
    "spec_from_dump",
]

API_VERSION = "core.oam.dev/v1beta1"
KIND = "Application"
HTTP_SERVER = "http-server"
KEYVALUE = "keyvalue"
PROVIDERS = (HTTP_SERVER, KEYVALUE)
# Markers looked for in the last path segment of a capability image.
_PROVIDER_MARKERS = {
    HTTP_SERVER: ("http-server", "httpserver"),
    KEYVALUE: ("keyvalue", "kv-", "kvredis", "kvnats"),
}
_SCALERS = {"spreadscaler": "spread", "daemonscaler": "daemon"}
_TRAITS = (*_SCALERS, "link")
_TOKEN = re.compile(r"^[-_a-zA-Z0-9]+$")
# registry host (with a dot, or localhost), optional port, repository, then a tag or digest
_OCI_REFERENCE = re.compile(
    r"^(localhost|[a-z0-9-]+(\.[a-z0-9-]+)+)(:\d+)?/[a-z0-9._/-]+"
    r"(:\w[\w.-]{0,127}|@sha256:[0-9a-f]{64})$",
    re.IGNORECASE,
)
_SHA256 = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")

Loc = tuple[str | int, ...]
Pairs = tuple[tuple[str, str], ...]
M = TypeVar("M", bound=BaseModel)


# -- public API -----------------------------------------------------------------------


def load_manifest(
    text: str, source: str = "<spec>", *, base_dir: str | Path | None = None
) -> AppSpec:
    """Parse and validate a wadm manifest; relative component paths resolve against
    ``base_dir`` (kept as written when it is None). Raises a ``ManifestError``."""
    root, data = _parse(text, source)
    report = _Report(source, _Locator(root))
    manifest = _validate_top(report, data)
    report.raise_if_any()
    assert manifest is not None
    spec = _Normaliser(report, Path(base_dir) if base_dir is not None else None).app(manifest)
    report.raise_if_any()
    return spec


def load_manifest_file(path: str | os.PathLike[str]) -> AppSpec:
    """Load a manifest file; relative component paths resolve against its directory."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problem = Problem(f"cannot read the manifest: {e}", source=str(path))
        raise ManifestFileError([problem]) from e
    return load_manifest(text, str(path), base_dir=Path(path).resolve().parent)


def spec_digest(text: str) -> str:
    """sha256 of a manifest's text: tells whether two stored specs are the same text."""
    return hashlib.sha256(text.encode()).hexdigest()


def dump_spec(spec: AppSpec) -> dict[str, Any]:
    """A JSON-able dict of ``spec`` (pairs become objects); ``spec_from_dump`` inverts it."""
    return {
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "annotations": dict(spec.annotations),
        "components": [_dump_component(c) for c in spec.components],
        "capabilities": [
            {"name": c.name, "provider": c.provider, "config": dict(c.config)}
            for c in spec.capabilities
        ],
        "links": [_dump_link(link) for link in spec.links],
    }


def spec_from_dump(data: dict[str, Any]) -> AppSpec:
    """The ``AppSpec`` that ``dump_spec`` turned into ``data``."""
    return AppSpec(
        name=data["name"],
        version=data["version"],
        description=data.get("description", ""),
        annotations=_pairs(data.get("annotations", {})),
        components=tuple(_undump_component(c) for c in data.get("components", [])),
        capabilities=tuple(
            CapabilityDecl(c["name"], c["provider"], _pairs(c.get("config", {})))
            for c in data.get("capabilities", [])
        ),
        links=tuple(_undump_link(link) for link in data.get("links", [])),
    )


# -- YAML with line numbers -----------------------------------------------------------


def _parse(text: str, source: str) -> tuple[yaml.Node, Any]:
    """The composed node tree and the plain data built from it."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            raise ManifestSyntaxError([Problem("the manifest is empty", source=source)])
        _check_duplicate_keys(root, source)
        return root, _construct(root)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ManifestSyntaxError([Problem(_yaml_message(e), line=line, source=source)]) from e
    except yaml.YAMLError as e:
        raise ManifestSyntaxError([Problem(f"not YAML: {e}", source=source)]) from e


def _construct(root: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _yaml_message(error: yaml.MarkedYAMLError) -> str:
    context = error.context or ""
    start, end = error.context_mark, error.problem_mark
    if context and start is not None and (end is None or start.line != end.line):
        context += f" (from line {start.line + 1})"
    return "YAML syntax error: " + "; ".join(part for part in (context, error.problem) if part)


def _check_duplicate_keys(root: yaml.Node, source: str) -> None:
    """PyYAML keeps the last of duplicate keys silently; a manifest must not have any."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            _check_mapping_keys(node, source)
            stack.extend(value for pair in node.value for value in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _check_mapping_keys(node: yaml.MappingNode, source: str) -> None:
    first_line: dict[str, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
            continue
        line = key.start_mark.line + 1
        if key.value in first_line:
            message = f"duplicate key '{key.value}' (first at line {first_line[key.value]})"
            raise ManifestSyntaxError([Problem(message, line=line, source=source)])
        first_line[key.value] = line


class _Locator:
    """Maps a pydantic error location to the node it names, for its line."""

    def __init__(self, root: yaml.Node) -> None:
        self.root = root

    def find(self, loc: Loc) -> tuple[Loc, int]:
        """(the parts of ``loc`` found in the YAML, 1-based line of the deepest one).

        Parts that are not keys or indexes of the YAML (pydantic's union or validator
        tags) are skipped, except a last part that is missing: it is the field required.
        """
        node, line, shown = self.root, self.root.start_mark.line, []
        for i, part in enumerate(loc):
            child = _child(node, part)
            if child is None:
                if i == len(loc) - 1:
                    shown.append(part)
                continue
            line, node = child
            shown.append(part)
        return tuple(shown), line + 1


def _child(node: yaml.Node, part: str | int) -> tuple[int, yaml.Node] | None:
    """(0-based line of the key or item, value node) for ``part`` of ``node``."""
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key.start_mark.line, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            item: yaml.Node = node.value[part]
            return item.start_mark.line, item
    return None


def _format_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# -- collecting problems --------------------------------------------------------------


@dataclass
class _Report:
    source: str
    locator: _Locator
    found: list[tuple[type[ManifestError], Problem]] = field(default_factory=list)

    def add(self, kind: type[ManifestError], loc: Loc, message: str) -> None:
        shown, line = self.locator.find(loc)
        self.found.append((kind, Problem(message, _format_path(shown), line, self.source)))

    def line_of(self, loc: Loc) -> int:
        return self.locator.find(loc)[1]

    def add_validation(self, error: ValidationError, prefix: Loc) -> None:
        for item in error.errors():
            self.add(ManifestSchemaError, prefix + tuple(item["loc"]), _pydantic_message(item))

    def raise_if_any(self) -> None:
        if self.found:
            ordered = sorted(self.found, key=lambda found: found[1].line or 0)
            raise ordered[0][0]([problem for _, problem in ordered])


def _pydantic_message(item: Any) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown field"
    if item["type"] in ("model_type", "dict_type"):
        return "Input should be a mapping"
    message: str = item["msg"]
    return message.removeprefix("Value error, ")


def _validate(report: _Report, model: type[M], data: Any, loc: Loc) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        report.add_validation(e, loc)
        return None


# -- the wadm manifest, as pydantic models --------------------------------------------


def _stringify(value: object) -> str:
    """Config values are strings in wadm; YAML numbers and booleans are accepted as such."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("must be a string, number or boolean")


def _token(value: str) -> str:
    if not _TOKEN.match(value):
        raise ValueError(f"'{value}' is not a lattice token: use letters, digits, '-' and '_'")
    return value


def _require_string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(f'must be a string: quote it in YAML ("{value}")')
    return value


ConfigValue = Annotated[str, BeforeValidator(_stringify)]
Token = Annotated[str, AfterValidator(_token)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ConfigProperty(_Strict):
    name: NonEmpty
    properties: dict[ConfigValue, ConfigValue] | None = None


class _Annotations(BaseModel):
    """``version`` is required; any other annotation is kept (and must be a string)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, StrictStr] = Field(init=False)

    version: Annotated[str, BeforeValidator(_require_string)]
    description: StrictStr = ""

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be a non-empty string without spaces")
        if value == "latest":
            raise ValueError("'latest' is not allowed as a version (as in wadm)")
        return value


class _Metadata(_Strict):
    name: Token
    annotations: _Annotations
    labels: dict[str, StrictStr] = Field(default_factory=dict)  # ignored


class _Trait(_Strict):
    type: str
    properties: dict[str, Any]


class _Component(_Strict):
    name: Token
    type: Literal["component", "actor", "capability"]
    properties: dict[str, Any]
    traits: list[_Trait] = Field(default_factory=list)


class _Spec(_Strict):
    components: list[_Component] = Field(min_length=1)
    policies: list[Any] = Field(default_factory=list)  # ignored


class _Manifest(_Strict):
    api_version: Literal["core.oam.dev/v1beta1"] = Field(alias="apiVersion")
    kind: Literal["Application"]
    metadata: _Metadata
    spec: _Spec


class _ComponentProperties(_Strict):
    image: NonEmpty
    id: str | None = None  # ignored: component ids are "<app>-<name>" here
    config: list[_ConfigProperty] = Field(default_factory=list)
    secrets: list[Any] = Field(default_factory=list)  # refused when not empty
    sha256: str | None = Field(default=None, pattern=_SHA256.pattern)  # ext
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000, strict=True)  # ext


class _CapabilityProperties(_Strict):
    image: NonEmpty | None = None
    provider: Literal["http-server", "keyvalue"] | None = None  # ext
    id: str | None = None  # ignored
    config: list[_ConfigProperty] = Field(default_factory=list)
    secrets: list[Any] = Field(default_factory=list)  # refused when not empty

    @model_validator(mode="after")
    def _image_or_provider(self) -> _CapabilityProperties:
        if self.image is None and self.provider is None:
            raise ValueError("give image (or this project's provider: http-server | keyvalue)")
        return self


class _Spread(_Strict):
    name: NonEmpty
    requirements: dict[ConfigValue, ConfigValue] = Field(default_factory=dict)
    weight: int = Field(default=100, ge=0, strict=True)


class _ScalerProperties(_Strict):
    instances: int | None = Field(default=None, ge=0, strict=True)
    replicas: int | None = Field(default=None, ge=0, strict=True)  # older wadm's name
    spread: list[_Spread] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_count(self) -> _ScalerProperties:
        if self.instances is None and self.replicas is None:
            raise ValueError("instances is required (replicas is accepted as older wadm's name)")
        if self.instances is not None and self.replicas is not None:
            raise ValueError("give instances or replicas (its older name), not both")
        return self

    @property
    def count(self) -> int:
        return self.instances if self.instances is not None else self.replicas or 0


class _ConfigDefinition(_Strict):
    config: list[_ConfigProperty] = Field(default_factory=list)
    secrets: list[Any] = Field(default_factory=list)  # refused when not empty


class _LinkTarget(_ConfigDefinition):
    name: NonEmpty


class _LinkProperties(_Strict):
    namespace: NonEmpty
    package: NonEmpty
    interfaces: list[NonEmpty] = Field(min_length=1)
    name: NonEmpty = "default"
    target: _LinkTarget
    target_config: list[_ConfigProperty] = Field(default_factory=list)  # older wadm
    source: _ConfigDefinition = Field(default_factory=_ConfigDefinition)
    source_config: list[_ConfigProperty] = Field(default_factory=list)  # older wadm

    @field_validator("target", mode="before")
    @classmethod
    def _target_name(cls, value: object) -> object:
        """Older wadm names the target with a plain string."""
        if isinstance(value, str):
            return {"name": value}
        if not isinstance(value, dict):
            raise ValueError("must be a component name, or a mapping {name, config}")
        return value


def _validate_top(report: _Report, data: Any) -> _Manifest | None:
    if not isinstance(data, dict):
        message = (
            "the top level must be a mapping (apiVersion, kind, metadata, spec), "
            f"not {_yaml_kind(data)}"
        )
        report.add(ManifestSchemaError, (), message)
        return None
    return _validate(report, _Manifest, data, ())


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


# -- normalisation and cross-checks ---------------------------------------------------


@dataclass(frozen=True)
class _LinkAt:
    decl: LinkDecl
    loc: Loc  # of the trait


@dataclass
class _Normaliser:
    report: _Report
    base_dir: Path | None

    def app(self, manifest: _Manifest) -> AppSpec:
        raws = manifest.spec.components
        self._check_unique_names(raws)
        components: list[ComponentDecl] = []
        capabilities: list[CapabilityDecl] = []
        links: list[_LinkAt] = []
        for i, raw in enumerate(raws):
            loc: Loc = ("spec", "components", i)
            self._check_trait_types(raw, loc)
            if raw.type == "capability":
                capabilities.extend(self._capability(raw, loc))
            else:
                components.extend(self._component(raw, loc))
            links.extend(self._links(raw, loc))
        kinds = {raw.name: "component" for raw in raws if raw.type != "capability"}
        kinds |= {raw.name: "capability" for raw in raws if raw.type == "capability"}
        kinds |= {c.name: c.provider for c in capabilities}
        self._check_links(links, kinds)
        annotations = manifest.metadata.annotations
        return AppSpec(
            name=manifest.metadata.name,
            version=annotations.version,
            components=tuple(components),
            capabilities=tuple(capabilities),
            links=tuple(link.decl for link in links),
            description=annotations.description,
            annotations=_pairs(annotations.model_dump(exclude_unset=True)),
        )

    def _problem(self, kind: type[ManifestError], loc: Loc, message: str) -> None:
        self.report.add(kind, loc, message)

    def _check_unique_names(self, raws: Sequence[_Component]) -> None:
        first: dict[str, int] = {}
        for i, raw in enumerate(raws):
            loc: Loc = ("spec", "components", i, "name")
            if raw.name in first:
                line = self.report.line_of(("spec", "components", first[raw.name], "name"))
                message = f"duplicate component name '{raw.name}' (first at line {line})"
                self._problem(ManifestReferenceError, loc, message)
            else:
                first[raw.name] = i

    # components and capabilities

    def _component(self, raw: _Component, loc: Loc) -> list[ComponentDecl]:
        ploc = (*loc, "properties")
        props = _validate(self.report, _ComponentProperties, raw.properties, ploc)
        scaler = self._component_scaler(raw, loc)
        if props is None:
            return []
        self._refuse_secrets(props.secrets, (*ploc, "secrets"))
        source = self._source(props.image, (*ploc, "image"))
        sha256 = props.sha256.removeprefix("sha256:").lower() if props.sha256 else None
        config = self._flatten([(props.config, (*ploc, "config"))])
        if source is None:
            return []
        return [ComponentDecl(raw.name, source, sha256, config, scaler, props.max_concurrency)]

    def _capability(self, raw: _Component, loc: Loc) -> list[CapabilityDecl]:
        ploc = (*loc, "properties")
        props = _validate(self.report, _CapabilityProperties, raw.properties, ploc)
        self._scalers(raw, loc)  # validated, then ignored: providers run on every host
        if props is None:
            return []
        self._refuse_secrets(props.secrets, (*ploc, "secrets"))
        provider = self._provider(props, ploc)
        config = self._flatten([(props.config, (*ploc, "config"))])
        return [CapabilityDecl(raw.name, provider, config)] if provider else []

    def _provider(self, props: _CapabilityProperties, ploc: Loc) -> str | None:
        named = _provider_of_image(props.image) if props.image else None
        if props.provider is None and named is None:
            message = (
                f"unsupported capability '{props.image}': the supported capabilities are the "
                "built-in providers http-server (an image naming http-server or httpserver) "
                "and keyvalue (an image naming keyvalue or kv-), or set properties.provider"
            )
            self._problem(UnsupportedFeatureError, (*ploc, "image"), message)
            return None
        if props.provider and named and props.provider != named:
            message = f"image '{props.image}' names {named}, but provider is {props.provider}"
            self._problem(ManifestReferenceError, (*ploc, "provider"), message)
            return None
        return props.provider or named

    def _source(self, image: str, loc: Loc) -> str | None:
        """The component's source as the host loader takes it, or None (refused)."""
        scheme, sep, _ = image.partition("://")
        scheme = scheme.lower() if sep else ""
        if scheme in ("file", "http", "https"):
            return image
        if scheme and scheme != "oci":
            message = (
                f"unsupported URL scheme '{scheme}://': use a file path, file:// or http(s)://"
            )
            self._problem(UnsupportedFeatureError, loc, message)
            return None
        path = image
        if self.base_dir is not None and not Path(image).is_absolute():
            path = os.path.normpath(self.base_dir / image)
        if scheme == "oci" or (_OCI_REFERENCE.match(image) and not Path(path).exists()):
            message = (
                f"'{image}' is an OCI image reference: pulling from registries is not "
                "supported; use a file path, a file:// or an http(s):// URL"
            )
            self._problem(UnsupportedFeatureError, loc, message)
            return None
        return path

    def _flatten(self, configs: Iterable[tuple[list[_ConfigProperty], Loc]]) -> Pairs:
        """Named configs merged into one mapping (a later name wins), as sorted pairs."""
        merged: dict[str, str] = {}
        for entries, loc in configs:
            for k, entry in enumerate(entries):
                if entry.properties is None:
                    message = (
                        f"config '{entry.name}' has no properties: named config managed "
                        "outside the manifest is not supported; give its properties here"
                    )
                    self._problem(UnsupportedFeatureError, (*loc, k), message)
                    continue
                merged.update(entry.properties)
        return tuple(sorted(merged.items()))

    def _refuse_secrets(self, secrets: list[Any], loc: Loc) -> None:
        if secrets:
            self._problem(UnsupportedFeatureError, loc, "secrets are not supported")

    # traits

    @staticmethod
    def _traits(raw: _Component, loc: Loc, wanted: Iterable[str]) -> list[tuple[_Trait, Loc]]:
        """The component's traits of the ``wanted`` types, with their locations."""
        wanted = set(wanted)
        return [(t, (*loc, "traits", j)) for j, t in enumerate(raw.traits) if t.type in wanted]

    def _check_trait_types(self, raw: _Component, loc: Loc) -> None:
        for j, trait in enumerate(raw.traits):
            if trait.type in _TRAITS:
                continue
            message = f"unknown trait type '{trait.type}' (known: {', '.join(sorted(_TRAITS))})"
            if trait.type == "linkdef":
                message += "; linkdef is older wadm's link: use link (namespace/package/interfaces)"
            self._problem(ManifestSchemaError, (*loc, "traits", j, "type"), message)

    def _scalers(self, raw: _Component, loc: Loc) -> list[Scaler]:
        found = (self._scaler(trait, tloc) for trait, tloc in self._traits(raw, loc, _SCALERS))
        return [scaler for scaler in found if scaler is not None]

    def _scaler(self, trait: _Trait, tloc: Loc) -> Scaler | None:
        ploc = (*tloc, "properties")
        props = _validate(self.report, _ScalerProperties, trait.properties, ploc)
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

    def _component_scaler(self, raw: _Component, loc: Loc) -> Scaler | None:
        scalers = self._scalers(raw, loc)
        declared = [(*loc, "traits", j) for j, t in enumerate(raw.traits) if t.type in _SCALERS]
        if not declared:
            message = f"component '{raw.name}' has no spreadscaler or daemonscaler trait"
            self._problem(ManifestReferenceError, loc, message)
        for extra in declared[1:]:
            message = "more than one scaler: a component takes one spreadscaler or daemonscaler"
            self._problem(ManifestReferenceError, (*extra, "type"), message)
        return scalers[0] if len(declared) == 1 and scalers else None

    # links

    def _links(self, raw: _Component, loc: Loc) -> list[_LinkAt]:
        links = []
        for trait, tloc in self._traits(raw, loc, ("link",)):
            decl = self._link(raw.name, trait, (*tloc, "properties"))
            if decl is not None:
                links.append(_LinkAt(decl, tloc))
        return links

    def _link(self, source: str, trait: _Trait, ploc: Loc) -> LinkDecl | None:
        props = _validate(self.report, _LinkProperties, trait.properties, ploc)
        if props is None:
            return None
        self._check_link_forms(trait.properties, ploc)
        self._refuse_secrets(props.target.secrets, (*ploc, "target", "secrets"))
        self._refuse_secrets(props.source.secrets, (*ploc, "source", "secrets"))
        target_config = self._flatten(
            [
                (props.target.config, (*ploc, "target", "config")),
                (props.target_config, (*ploc, "target_config")),
            ]
        )
        source_config = self._flatten(
            [
                (props.source.config, (*ploc, "source", "config")),
                (props.source_config, (*ploc, "source_config")),
            ]
        )
        return LinkDecl(
            source=source,
            target=props.target.name,
            namespace=props.namespace,
            package=props.package,
            interfaces=tuple(props.interfaces),
            name=props.name,
            source_config=source_config,
            target_config=target_config,
        )

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
        if target_kind is None:
            names = ", ".join(sorted(kinds))
            message = f"link target '{decl.target}' is not a component of this app ({names})"
            self._problem(ManifestReferenceError, tloc, message)
        elif decl.target == decl.source:
            self._problem(ManifestReferenceError, tloc, "a component cannot link to itself")
        elif source_kind == KEYVALUE:
            message = "links from a keyvalue capability are not supported"
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
        path = dict(link.decl.source_config).get("path")
        if path is not None and not path.startswith("/"):
            message = f"the HTTP route path '{path}' must start with '/'"
            self._problem(ManifestSchemaError, (*link.loc, "properties", "source"), message)
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
        else:
            first[key] = link.loc


def _provider_of_image(image: str) -> str | None:
    """The built-in provider an image's name (its last path segment) stands for."""
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()
    for provider, markers in _PROVIDER_MARKERS.items():
        if any(marker in name for marker in markers):
            return provider
    return None


# -- dump -----------------------------------------------------------------------------


def _pairs(mapping: dict[str, Any]) -> Pairs:
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


def _dump_component(c: ComponentDecl) -> dict[str, Any]:
    scaler = None
    if c.scaler is not None:
        spreads = [
            {"name": s.name, "requirements": dict(s.requirements), "weight": s.weight}
            for s in c.scaler.spreads
        ]
        scaler = {"kind": c.scaler.kind, "instances": c.scaler.instances, "spreads": spreads}
    return {
        "name": c.name,
        "source": c.source,
        "sha256": c.sha256,
        "config": dict(c.config),
        "scaler": scaler,
        "max_concurrency": c.max_concurrency,
    }


def _undump_component(data: dict[str, Any]) -> ComponentDecl:
    scaler = None
    if data.get("scaler") is not None:
        s = data["scaler"]
        spreads = tuple(
            Spread(x["name"], _pairs(x.get("requirements", {})), x.get("weight", 100))
            for x in s.get("spreads", [])
        )
        scaler = Scaler(s["kind"], s["instances"], spreads)
    return ComponentDecl(
        name=data["name"],
        source=data["source"],
        sha256=data.get("sha256"),
        config=_pairs(data.get("config", {})),
        scaler=scaler,
        max_concurrency=data.get("max_concurrency"),
    )


def _dump_link(link: LinkDecl) -> dict[str, Any]:
    return {
        "source": link.source,
        "target": link.target,
        "namespace": link.namespace,
        "package": link.package,
        "interfaces": list(link.interfaces),
        "name": link.name,
        "source_config": dict(link.source_config),
        "target_config": dict(link.target_config),
    }


def _undump_link(data: dict[str, Any]) -> LinkDecl:
    return LinkDecl(
        source=data["source"],
        target=data["target"],
        namespace=data["namespace"],
        package=data["package"],
        interfaces=tuple(data["interfaces"]),
        name=data.get("name", "default"),
        source_config=_pairs(data.get("source_config", {})),
        target_config=_pairs(data.get("target_config", {})),
    )
