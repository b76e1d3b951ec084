"""wadm's ``Application`` manifest as pydantic models (the shape; meaning is checked later)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from catalog.kinds import CAPABILITY_KINDS
from deploy.errors import (
    ManifestSchemaError,
)
from deploy.locate import Report, validate
from deploy.names import check_name, check_version, link_part_problem

_SHA256 = re.compile(r"^(sha256:)?[0-9a-fA-F]{64}$")


def stringify(value: object) -> str:
    """Config values are strings in wadm; YAML numbers and booleans are accepted as such."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("must be a string, number or boolean")


def link_part(value: str) -> str:
    problem = link_part_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def require_string(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError(f'must be a string: quote it in YAML ("{value}")')
    return value


def capability_kind(value: str) -> str:
    """A provider kind a capability may name (``catalog.kinds``), refused like a Literal."""
    if value not in CAPABILITY_KINDS:
        expected = ", ".join(f"'{kind}'" for kind in CAPABILITY_KINDS[:-1])
        raise PydanticCustomError(
            "literal_error",
            "Input should be {expected}",
            {"expected": f"{expected} or '{CAPABILITY_KINDS[-1]}'"},
        )
    return value


ConfigValue = Annotated[str, BeforeValidator(stringify)]
# App and component names: scoped into lattice ids, see deploy.names.
Name = Annotated[str, AfterValidator(check_name)]
NonEmpty = Annotated[str, Field(min_length=1)]
LinkPart = Annotated[str, Field(min_length=1), AfterValidator(link_part)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigProperty(Strict):
    name: NonEmpty
    properties: dict[ConfigValue, ConfigValue] | None = None


class Annotations(BaseModel):
    """``version`` is optional (generated at apply, as wadm does); any other annotation
    is kept (and must be a string)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, StrictStr] = Field(init=False)

    version: Annotated[str, BeforeValidator(require_string)] | None = None
    description: StrictStr = ""

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be a non-empty string without spaces")
        return check_version(value)


class Metadata(Strict):
    name: Name
    annotations: Annotations = Field(default_factory=Annotations)
    labels: dict[str, StrictStr] = Field(default_factory=dict)  # ignored


class Trait(Strict):
    type: str
    properties: dict[str, Any]


class ComponentEntry(Strict):
    name: Name
    type: Literal["component", "actor", "capability"]
    properties: dict[str, Any]
    traits: list[Trait] = Field(default_factory=list)


class PolicyEntry(Strict):
    """A wadm policy; ``policy.secret.wasmcloud.dev/v1alpha1`` ones name a secrets backend."""

    name: NonEmpty
    type: NonEmpty
    properties: dict[ConfigValue, ConfigValue] = Field(default_factory=dict)


class SpecEntry(Strict):
    components: list[ComponentEntry] = Field(min_length=1)
    policies: list[PolicyEntry] = Field(default_factory=list)


class SecretSource(Strict):
    policy: NonEmpty
    key: NonEmpty
    field: NonEmpty | None = None
    version: NonEmpty | None = None  # accepted: the lattice keeps one value per secret


class SecretEntry(Strict):
    """wadm's ``secrets: [{name, properties: {policy, key, field?, version?}}]``."""

    name: NonEmpty
    properties: SecretSource


class Manifest(Strict):
    api_version: Literal["core.oam.dev/v1beta1"] = Field(alias="apiVersion")
    kind: Literal["Application"]
    metadata: Metadata
    spec: SpecEntry


class ComponentProperties(Strict):
    image: NonEmpty
    id: str | None = None  # ignored: component ids are "<app>--<name>" here
    config: list[ConfigProperty] = Field(default_factory=list)
    secrets: list[SecretEntry] = Field(default_factory=list)
    sha256: str | None = Field(default=None, pattern=_SHA256.pattern)  # ext
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000, strict=True)  # ext


class CapabilityProperties(Strict):
    image: NonEmpty | None = None
    provider: Annotated[str, AfterValidator(capability_kind)] | None = None  # ext
    id: str | None = None  # ignored
    config: list[ConfigProperty] = Field(default_factory=list)
    secrets: list[SecretEntry] = Field(default_factory=list)  # refused when not empty

    @model_validator(mode="after")
    def _image_or_provider(self) -> CapabilityProperties:
        if self.image is None and self.provider is None:
            kinds = " | ".join(CAPABILITY_KINDS)
            raise ValueError(f"give image (or this project's provider: {kinds})")
        return self


class SpreadEntry(Strict):
    name: NonEmpty
    requirements: dict[ConfigValue, ConfigValue] = Field(default_factory=dict)
    weight: int = Field(default=100, ge=0, strict=True)


class ScalerProperties(Strict):
    instances: int | None = Field(default=None, ge=0, strict=True)
    replicas: int | None = Field(default=None, ge=0, strict=True)  # older wadm's name
    spread: list[SpreadEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_count(self) -> ScalerProperties:
        if self.instances is None and self.replicas is None:
            raise ValueError("instances is required (replicas is accepted as older wadm's name)")
        if self.instances is not None and self.replicas is not None:
            raise ValueError("give instances or replicas (its older name), not both")
        return self

    @property
    def count(self) -> int:
        return self.instances if self.instances is not None else self.replicas or 0


class ConfigDefinition(Strict):
    config: list[ConfigProperty] = Field(default_factory=list)
    secrets: list[SecretEntry] = Field(default_factory=list)  # refused when not empty


class LinkTarget(ConfigDefinition):
    name: NonEmpty


class LinkProperties(Strict):
    namespace: LinkPart
    package: LinkPart
    interfaces: list[NonEmpty] = Field(min_length=1)
    name: LinkPart = "default"
    target: LinkTarget
    target_config: list[ConfigProperty] = Field(default_factory=list)  # older wadm
    source: ConfigDefinition = Field(default_factory=ConfigDefinition)
    source_config: list[ConfigProperty] = Field(default_factory=list)  # older wadm

    @field_validator("target", mode="before")
    @classmethod
    def _target_name(cls, value: object) -> object:
        """Older wadm names the target with a plain string."""
        if isinstance(value, str):
            return {"name": value}
        if not isinstance(value, dict):
            raise ValueError("must be a component name, or a mapping {name, config}")
        return value


def validate_top(report: Report, data: Any) -> Manifest | None:
    if not isinstance(data, dict):
        message = (
            "the top level must be a mapping (apiVersion, kind, metadata, spec), "
            f"not {yaml_kind(data)}"
        )
        report.add(ManifestSchemaError, (), message)
        return None
    return validate(report, Manifest, data, ())


def yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
