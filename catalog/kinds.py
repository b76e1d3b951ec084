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
or an image. wasmCloud's first-party provider images map by repository name, whatever
the registry host (``ghcr.io/wasmcloud/keyvalue-redis`` and
``localhost:5000/wasmcloud/keyvalue-redis`` alike): ``FIRST_PARTY_IMAGES`` lists them
with the wasmCloud config keys each takes (``ConfigKey.aliases`` and
``WADM_IGNORED_CONFIG`` map those onto this project's). Other image names that contain
one of a kind's ``image_markers`` map to it too. An image with no counterpart is not a
manifest error (wadm cannot judge images either): the controller reports it in the
app's status, naming ``SUPPORTED_IMAGES``.
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
    # wasmCloud's name for the same setting (``url`` for keyvalue-redis's ``redis_url``);
    # also read from the target config of links to the capability, where wasmCloud puts it.
    aliases: tuple[str, ...] = ()


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
            image_markers=("keyvalue", "kv-"),
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
                ConfigKey("redis_url", "WASMLATTICE_REDIS_URL", required=True, aliases=("url",)),
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


# wasmCloud's first-party provider images (the repository's last path segment, as
# published under ghcr.io/wasmcloud/ and the older wasmcloud.azurecr.io/) and the kind
# each maps to. Their config keys: http-server's link source config ``address`` (each
# host serves on its own port here: accepted, unused), ``path`` and ``host`` (the route);
# keyvalue-nats's link target config ``bucket``; keyvalue-redis's ``url``.
FIRST_PARTY_IMAGES: Mapping[str, str] = {
    "http-server": HTTP_SERVER,
    "httpserver": HTTP_SERVER,
    "keyvalue-nats": KEYVALUE,
    "kvnats": KEYVALUE,
    "keyvalue-redis": KEYVALUE_REDIS,
    "kvredis": KEYVALUE_REDIS,
}
# Config keys wasmCloud's providers take that mean nothing here (accepted, unused).
WADM_IGNORED_CONFIG: Mapping[str, tuple[str, ...]] = {
    HTTP_SERVER: ("address", "routing_mode", "default_address", "max_content_len", "timeout_ms"),
    KEYVALUE: ("cluster_uri", "js_domain", "enable_bucket_auto_create"),
}
SUPPORTED_IMAGES = tuple(sorted(FIRST_PARTY_IMAGES))


def image_name(image: str) -> str:
    """An image reference's repository name: its last path segment, no tag or digest."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0].lower()


def kind_of_image(image: str) -> str | None:
    """The kind an image stands for: a first-party image by name, else by marker."""
    name = image_name(image)
    if name in FIRST_PARTY_IMAGES:
        return FIRST_PARTY_IMAGES[name]
    for kind in KINDS.values():
        if any(marker in name for marker in kind.image_markers):
            return kind.name
    return None


def placed_kind(name: str) -> ProviderKind | None:
    """The placed kind called ``name``, or None (a built-in or unknown kind)."""
    kind = KINDS.get(name)
    return kind if kind is not None and kind.placed else None
