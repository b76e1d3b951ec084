"""The normalised deployment model the controller reconciles.

``deploy.manifest`` turns a user's YAML (wadm OAM ``Application`` manifests) into
these plain, frozen, comparable values; the controller never sees YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from catalog.kinds import placed_kind


@dataclass(frozen=True)
class Spread:
    """A share of replicas for hosts whose labels include every ``requirements`` pair."""

    name: str
    requirements: tuple[tuple[str, str], ...] = ()
    weight: int = 100

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.requirements)


@dataclass(frozen=True)
class Scaler:
    """``spreadscaler``: ``instances`` in total, split by weight over the spreads.
    ``daemonscaler``: ``instances`` on every host that matches a spread (any host if none).
    """

    kind: str  # "spread" | "daemon"
    instances: int
    spreads: tuple[Spread, ...] = ()


@dataclass(frozen=True)
class LinkDecl:
    """A link from ``source`` to ``target`` (component names within the app, or a provider).

    ``source``/``target`` are names of components in the same app; the controller maps
    capability components to provider kinds and wasm components to lattice ids.
    """

    source: str
    target: str
    namespace: str
    package: str
    interfaces: tuple[str, ...]
    name: str = "default"
    source_config: tuple[tuple[str, str], ...] = ()
    target_config: tuple[tuple[str, str], ...] = ()
    # Named config stored on the lattice (``lattice config put``), merged under the
    # inline values above when the controller writes the link.
    source_config_names: tuple[str, ...] = ()
    target_config_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecretRef:
    """A secret a component asks for: config key ``name`` gets field ``field`` of the
    lattice secret ``key`` (``lattice secret put KEY FIELD=VALUE``); with no field, the
    secret must hold one value. ``policy`` names the manifest's secret policy."""

    name: str
    key: str
    field: str | None = None
    policy: str = ""


@dataclass(frozen=True)
class ComponentDecl:
    """A wasm component of the app, with its scaler."""

    name: str
    source: str  # file path, file:// or http(s):// URL
    sha256: str | None = None
    config: tuple[tuple[str, str], ...] = ()
    scaler: Scaler | None = None  # None: declared, not placed (as in wadm)
    max_concurrency: int | None = None
    # Named config on the lattice (``lattice config put``), under ``config``'s values.
    config_names: tuple[str, ...] = ()
    secrets: tuple[SecretRef, ...] = ()


@dataclass(frozen=True)
class CapabilityDecl:
    """A capability (provider) component of the app.

    ``provider`` is a kind from ``catalog.kinds``: built in (runs on every host, ``scaler``
    is None) or placed (a provider process; ``scaler`` says where it runs, None: not
    placed). ``UNSUPPORTED`` (empty) for an ``image`` with no counterpart here: the
    controller reports it in the app's status and deploys the rest.
    """

    name: str
    provider: str
    config: tuple[tuple[str, str], ...] = ()
    scaler: Scaler | None = None
    image: str = ""

    @property
    def placed(self) -> bool:
        return placed_kind(self.provider) is not None

    @property
    def supported(self) -> bool:
        return self.provider != UNSUPPORTED


UNSUPPORTED = ""


@dataclass(frozen=True)
class AppSpec:
    name: str
    version: str
    components: tuple[ComponentDecl, ...] = ()
    capabilities: tuple[CapabilityDecl, ...] = ()
    links: tuple[LinkDecl, ...] = ()
    description: str = ""
    annotations: tuple[tuple[str, str], ...] = field(default=())
