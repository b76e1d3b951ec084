"""Control messages: pydantic models carried as msgpack.

Every message on the lattice is one of these models (or a lattice event,
``lattice.events``), validated on receipt. A reply is always a ``Reply``: ``ok``
with ``data``, or an error with a code (``bad_request``, ``not_found``, ``failed``,
``unavailable``) and a one-line message that names what is wrong, with any URL
in it redacted (``Reply.failure``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgpack
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from catalog.kinds import HTTP_SERVER, PLACED_KINDS
from lattice.errors import BadMessage
from lattice.redact import printable, redacted_text

M = TypeVar("M", bound=BaseModel)


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def encode(message: BaseModel) -> bytes:
    packed: bytes = msgpack.packb(message.model_dump(mode="json"), use_bin_type=True)
    return packed


def decode(model: type[M], data: bytes) -> M:
    """Decode and validate; BadMessage says which field is wrong."""
    raw = unpack_map(data, model.__name__)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BadMessage(f"invalid {model.__name__}: {problems(exc)}") from exc


def unpack_map(data: bytes, what: str) -> dict[str, Any]:
    """The msgpack map in ``data`` (empty data is an empty map); BadMessage otherwise."""
    try:
        raw = msgpack.unpackb(data, raw=False) if data else {}
    except Exception as exc:  # msgpack raises several unrelated types
        raise BadMessage(f"not a msgpack message ({type(exc).__name__})") from exc
    if not isinstance(raw, dict):
        raise BadMessage(f"expected a map for {what}, got {type(raw).__name__}")
    return raw


def problems(exc: ValidationError) -> str:
    """Each invalid field with what is wrong with it, on one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(message)'}: {err['msg']}"
        for err in exc.errors()
    )


# -- shared pieces ----------------------------------------------------------


class Link(Message):
    """Binds ``source_id``'s import of ``namespace:package/interfaces`` to ``target``.

    ``target`` is a built-in provider kind (``keyvalue``, see ``catalog.kinds``) or a
    component id. A link whose source is ``http-server`` routes HTTP to the target
    component instead (config ``path`` and optional ``host``).
    """

    source_id: str = Field(min_length=1)
    target: str = Field(min_length=1)
    namespace: str = "wasi"
    package: str = "keyvalue"
    interfaces: list[str] = Field(default_factory=list)
    name: str = "default"
    config: dict[str, str] = Field(default_factory=dict)
    # Who manages this link (the controller sets app=<name>); empty for hand-made links.
    annotations: dict[str, str] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return link_key(self.source_id, self.namespace, self.package, self.name)


def http_route(component_id: str, path: str) -> Link:
    """The link that routes HTTP under ``path`` to a component (one per component)."""
    return Link(
        source_id=HTTP_SERVER,
        target=component_id,
        namespace="wasmlattice",
        package="http",
        interfaces=["incoming-handler"],
        name=component_id,
        config={"path": path},
    )


def link_key(source_id: str, namespace: str, package: str, name: str) -> str:
    """Where a link is stored: one link per source, package and link name."""
    return f"{source_id}/{namespace}:{package}/{name}"


class ComponentDescription(Message):
    component_id: str
    source: str
    digest: str
    count: int
    max_concurrency: int
    active: int = 0
    invocations: int = 0
    failures: int = 0
    exports: list[str] = Field(default_factory=list)
    annotations: dict[str, str] = Field(default_factory=dict)


class ProviderDescription(Message):
    """An out-of-process provider a host supervises (``host.supervisor``)."""

    provider_id: str
    kind: str
    pid: int | None = None  # None between an exit and the restart
    healthy: bool = False
    restarts: int = 0
    annotations: dict[str, str] = Field(default_factory=dict)
    # As shown: secret-looking keys masked, URLs redacted (``lattice.redact.redacted_config``).
    config: dict[str, str] = Field(default_factory=dict)


class HostInventory(Message):
    host_id: str
    friendly_name: str
    labels: dict[str, str]
    version: str
    uptime_s: float
    components: list[ComponentDescription] = Field(default_factory=list)
    http_url: str | None = None
    draining: bool = False
    providers: list[ProviderDescription] = Field(default_factory=list)
    # The host's public sealing key: the controller seals a component's secrets to it.
    secrets_key: str = ""


# -- control requests ---------------------------------------------------------


class ScaleComponent(Message):
    """Run ``count`` replicas of a component on the addressed host (0 stops it)."""

    component_id: str = Field(min_length=1, pattern=r"^[-_a-zA-Z0-9]+$")
    source: str = Field(min_length=1)
    sha256: str | None = None
    count: int = Field(default=1, ge=0, le=10_000)
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000)
    deadline_s: float = Field(default=10.0, gt=0, le=3600)
    memory_mb: int = Field(default=256, ge=1, le=65536)
    config: dict[str, str] = Field(default_factory=dict)
    config_names: list[str] = Field(default_factory=list)
    annotations: dict[str, str] = Field(default_factory=dict)
    # Config key -> value sealed to the addressed host's key (``lattice.secrets``).
    secrets: dict[str, str] = Field(default_factory=dict)


class StopComponent(Message):
    component_id: str = Field(min_length=1)


class LinkRef(Message):
    source_id: str
    namespace: str = "wasi"
    package: str = "keyvalue"
    name: str = "default"

    @property
    def key(self) -> str:
        return link_key(self.source_id, self.namespace, self.package, self.name)


class ConfigPut(Message):
    name: str = Field(min_length=1, pattern=r"^[-_a-zA-Z0-9]+$")
    values: dict[str, str]


class ConfigRef(Message):
    name: str = Field(min_length=1)


class LabelPut(Message):
    key: str = Field(min_length=1)
    value: str


class LabelDel(Message):
    key: str = Field(min_length=1)


class Empty(Message):
    pass


class StopHost(Message):
    drain_timeout_s: float = Field(default=10.0, ge=0, le=600)


def placed(kind: str) -> str:
    if kind not in PLACED_KINDS:
        raise ValueError(f"unknown provider kind {kind!r} (known: {', '.join(PLACED_KINDS)})")
    return kind


class StartProvider(Message):
    """Run an out-of-process provider on the addressed host, which supervises it.

    ``kind`` is a placed kind of ``catalog.kinds``, and ``config`` holds the config
    keys its entry lists (for ``keyvalue-redis``: ``redis_url``, required, and
    ``key_prefix``).
    """

    provider_id: str = Field(min_length=1, pattern=r"^[-_a-zA-Z0-9]+$")
    kind: Annotated[str, AfterValidator(placed)]
    config: dict[str, str] = Field(default_factory=dict)
    # Who asked, reported back in the inventory (the controller sets app and revision).
    annotations: dict[str, str] = Field(default_factory=dict)


class StopProvider(Message):
    provider_id: str = Field(min_length=1)


# -- replies ----------------------------------------------------------------

ErrorCode = Literal["bad_request", "not_found", "failed", "unavailable"]


class Reply(Message):
    ok: bool
    data: Any = None
    error: str | None = None
    code: ErrorCode | None = None

    @staticmethod
    def success(data: Any = None) -> Reply:
        return Reply(ok=True, data=data)

    @staticmethod
    def failure(code: ErrorCode, error: str) -> Reply:
        """An error reply: ``error`` on one line, and any URL in it without its secrets.

        Errors quote what a request held (a field name, a source), so the escaping
        (``lattice.redact.printable``) keeps a request from writing lines of its own.
        """
        return Reply(ok=False, code=code, error=printable(redacted_text(error)))
