"""Provider kinds: the contract each serves, where it runs, what config it takes.

Two families:

- **built-in** kinds run inside every host, bound in-process by ``host.runtime``.
  A link whose target is the kind's name grants its interfaces to the linking
  component (``keyvalue``); some are granted to every component without a link
  (``logging``, ``config``: each reaches only the component's own log stream or
  config). ``http-server`` is the one kind that calls into components: a link whose
  *source* is ``http-server`` routes HTTP to the target's ``HTTP_HANDLER`` (or standard
  ``wasi:http/incoming-handler``) export. ``http-client`` grants outgoing ``wasi:http``
  to the destinations its link config allows (``providers.http_client``); without the
  link, every request is denied.
- **placed** kinds run as their own process (``python -m providers.run KIND``), which
  a host supervises and the controller places with the capability's scaler, at most
  one per host. A placed kind serves the contract of a built-in kind (``serves``)
  over the lattice: a component's link to it is a link to that kind with config
  ``provider=<id>``. Its config reaches the process in environment variables
  (``ConfigKey.env``), never on a command line other users can read.

A manifest capability may name a kind marked ``capability`` (``properties.provider``),
or a wadm image whose name contains one of the kind's ``image_markers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from catalog import contracts

HTTP_SERVER = "http-server"
HTTP_CLIENT = "http-client"
KEYVALUE = "keyvalue"
LOGGING = "logging"
CONFIG = "config"
KEYVALUE_REDIS = "keyvalue-redis"


@dataclass(frozen=True)
class ConfigKey:
    """One config key of a placed kind, and the environment variable that carries it."""

    name: str
    env: str
    required: bool = False


@dataclass(frozen=True)
class ProviderKind:
    name: str
    summary: str
    provides: tuple[str, ...] = ()  # interfaces components import from it
    calls: tuple[str, ...] = ()  # interfaces of components it calls (their exports)
    granted: bool = False  # given to every component without a link
    capability: bool = False  # a manifest capability may name it
    image_markers: tuple[str, ...] = ()  # wadm image names that stand for it
    serves: str | None = None  # placed kinds: the built-in kind whose contract it serves
    config: tuple[ConfigKey, ...] = ()  # placed kinds: what StartProvider.config may hold

    @property
    def placed(self) -> bool:
        return self.serves is not None

    @property
    def required_config(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.config if key.required)

    @property
    def optional_config(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.config if not key.required)


KINDS: Mapping[str, ProviderKind] = {
    kind.name: kind
    for kind in (
        ProviderKind(
            HTTP_SERVER,
            "routes HTTP to components",
            calls=(contracts.HTTP_HANDLER,),
            capability=True,
            image_markers=("http-server", "httpserver"),
        ),
        ProviderKind(
            KEYVALUE,
            "key-value buckets (NATS JetStream, or memory)",
            provides=(contracts.KEYVALUE_STORE, contracts.KEYVALUE_ATOMICS),
            capability=True,
            image_markers=("keyvalue", "kv-", "kvredis", "kvnats"),
        ),
        ProviderKind(
            HTTP_CLIENT,
            "outgoing HTTP to the destinations its link allows",
            provides=(contracts.WASI_HTTP_OUTGOING,),
            capability=True,
            image_markers=("http-client", "httpclient"),
        ),
        ProviderKind(LOGGING, "the component's log stream", (contracts.LOGGING,), granted=True),
        ProviderKind(CONFIG, "the component's config", (contracts.CONFIG_STORE,), granted=True),
        ProviderKind(
            KEYVALUE_REDIS,
            "a Redis-backed provider process",
            capability=True,
            serves=KEYVALUE,
            config=(
                ConfigKey("redis_url", "WASMLATTICE_REDIS_URL", required=True),
                ConfigKey("key_prefix", "WASMLATTICE_REDIS_KEY_PREFIX"),
            ),
        ),
    )
}

# Views of the table, for the questions each layer asks.

# Kinds a manifest capability may name, in the table's order.
CAPABILITY_KINDS = tuple(k.name for k in KINDS.values() if k.capability)
# Capability kinds built into every host: such a capability needs no placement.
BUILTIN_CAPABILITIES = tuple(k.name for k in KINDS.values() if k.capability and not k.placed)
# Kinds that run as their own process, placed by the controller.
PLACED_KINDS = tuple(k.name for k in KINDS.values() if k.placed)
# Built-in kinds a link may target, and the interfaces such a link grants.
PROVIDER_INTERFACES: Mapping[str, tuple[str, ...]] = {
    k.name: k.provides for k in KINDS.values() if k.provides and not k.placed
}
# Granted to every component without a link.
ALWAYS_GRANTED = tuple(i for k in KINDS.values() if k.granted for i in k.provides)


def placed_kind(name: str) -> ProviderKind | None:
    """The placed kind called ``name``, or None (a built-in or unknown kind)."""
    kind = KINDS.get(name)
    return kind if kind is not None and kind.placed else None
