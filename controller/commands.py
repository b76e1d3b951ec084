"""Commands the controller issues: plain, frozen, comparable data in a closed union.

``reconcile()`` returns them; ``controller.executor`` is the only code that sends them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lattice.messages import link_key

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ScaleCommand:
    """Run ``count`` replicas of ``component_id`` on ``host_id`` (0 stops it there)."""

    host_id: str
    component_id: str
    count: int
    source: str
    revision: str
    app: str
    version: str
    sha256: str | None = None
    config: Pairs = ()
    max_concurrency: int | None = None
    # Named config on the lattice, resolved by the host under ``config``.
    config_names: tuple[str, ...] = ()
    # (config key, lattice secret, field or ""): sealed for the host by the executor.
    secrets: tuple[tuple[str, str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return ("scale", self.host_id, self.component_id)


@dataclass(frozen=True)
class PutLinkCommand:
    source_id: str
    target: str
    namespace: str
    package: str
    interfaces: tuple[str, ...]
    name: str
    config: Pairs
    app: str

    @property
    def link_key(self) -> str:
        return link_key(self.source_id, self.namespace, self.package, self.name)

    @property
    def key(self) -> tuple[str, str, str]:
        return ("link", self.link_key, "put")


@dataclass(frozen=True)
class DeleteLinkCommand:
    link_key: str

    @property
    def key(self) -> tuple[str, str, str]:
        return ("link", self.link_key, "delete")


@dataclass(frozen=True)
class ProviderCommand:
    """Run (``run``) or stop out-of-process provider ``provider_id`` on ``host_id``.

    Running another revision where one runs already replaces it (the host starts the
    new process before it stops the old one).
    """

    host_id: str
    provider_id: str
    run: bool
    kind: str = ""
    config: Pairs = ()
    revision: str = ""
    app: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return ("provider", self.host_id, self.provider_id)


Command = ScaleCommand | PutLinkCommand | DeleteLinkCommand | ProviderCommand
