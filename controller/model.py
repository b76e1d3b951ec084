"""What the controller observes and remembers, as plain values for ``reconcile()``."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.commands import Pairs

MANAGED_BY = "wasmlattice-controller"


@dataclass(frozen=True)
class Replicas:
    """A component as one host reports it in its heartbeat."""

    count: int
    revision: str = ""
    app: str = ""


@dataclass(frozen=True)
class ProviderReplica:
    """An out-of-process provider as one host reports it (at most one per id and host)."""

    revision: str = ""
    app: str = ""
    healthy: bool = False


@dataclass(frozen=True)
class HostView:
    host_id: str
    labels: dict[str, str]
    last_seen: float
    draining: bool = False
    components: dict[str, Replicas] = field(default_factory=dict)
    providers: dict[str, ProviderReplica] = field(default_factory=dict)
    secrets_key: str = ""  # the host's public sealing key (lattice.secrets)


@dataclass(frozen=True)
class LinkView:
    """A link as stored on the lattice (only what reconcile compares)."""

    key: str
    target: str
    interfaces: tuple[str, ...]
    config: Pairs
    app: str
    source: str = ""


@dataclass(frozen=True)
class Observed:
    hosts: dict[str, HostView] = field(default_factory=dict)
    links: dict[str, LinkView] = field(default_factory=dict)


@dataclass(frozen=True)
class Pending:
    """A scale or provider command in flight: assumed to hold until confirmed or
    ``expires_at`` (for a provider, ``count`` is 1 to run it, 0 to stop it)."""

    count: int
    revision: str
    expires_at: float
