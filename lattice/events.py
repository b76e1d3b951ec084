"""Lattice events: one model per event type, a closed union, one way to publish.

An event says that something happened; whoever cares subscribes to
``subjects.event(type, source)`` (``P.L.evt.<type>.<source>``). Each type is a model below with a
``Literal`` ``type``, the ``source`` that published it (a host id, ``client``, a
controller id), the publisher's ``time`` and a typed ``data`` payload, so the wire
form is ``{type, source, time, data}`` and ``lattice events -o json`` prints just
that. ``LatticeEvent`` is the union of them all, discriminated on ``type``:

==========================  ======================  =====================================
type                        data                    published by
==========================  ======================  =====================================
host_started                HostInventory           a host, once connected
host_heartbeat              HostInventory           a host, every ``heartbeat_s``
host_stopped                HostRef                 a host, at the end of its shutdown
host_draining               HostRef                 a host asked to drain
labels_changed              HostLabels              a host whose labels were changed
component_scaled            ScaleDone               a host that applied a scale request
component_scale_failed      ScaleFailure            a host that could not apply one
link_set, link_deleted      Link                    whoever wrote the link (``LatticeState``)
config_set, config_deleted  ConfigName              whoever wrote the named config
spec_changed                SpecChange              whoever changed a spec (``SpecStore``)
provider_started            ProviderChange          a host's provider supervisor
provider_stopped            ProviderStop            a host's provider supervisor
provider_restarted          ProviderRestart         a host's provider supervisor
provider_health_failed      ProviderHealthFailure   a host's provider supervisor
==========================  ======================  =====================================

A publisher builds the model and hands it to ``publish_event``; a consumer decodes
with ``decode_event`` and matches on the model's class, never on ``data`` keys.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from nats.aio.client import Client
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from lattice.errors import BadMessage
from lattice.messages import HostInventory, Link, Message, encode, problems, unpack_map
from lattice.subjects import Subjects

D = TypeVar("D", bound=BaseModel)


class EventBase(Message, Generic[D]):
    """What every event carries; a subclass fixes ``type`` and the payload's model."""

    source: str
    time: float = Field(default_factory=time.time)
    data: D

    @classmethod
    def event_type(cls) -> str:
        """The ``type`` of this event class (for its subject)."""
        default = cls.model_fields["type"].default
        assert isinstance(default, str), f"{cls.__name__} has no event type"
        return default


# -- payloads ------------------------------------------------------------------------


class HostRef(Message):
    host_id: str


class HostLabels(Message):
    host_id: str
    labels: dict[str, str]


class ScaleDone(Message):
    host_id: str
    component_id: str
    count: int
    source: str
    annotations: dict[str, str] = Field(default_factory=dict)


class ScaleFailure(Message):
    host_id: str
    component_id: str
    count: int
    error: str


class ConfigName(Message):
    name: str


SpecAction = Literal["put", "deploy", "undeploy", "delete"]


class SpecChange(Message):
    app: str
    action: SpecAction
    version: str | None = None


class ProviderChange(Message):
    """A provider process a host supervises (``pid`` None when none runs)."""

    host_id: str
    provider_id: str
    kind: str
    pid: int | None = None
    restarts: int = 0


class ProviderStop(ProviderChange):
    reason: str


class ProviderRestart(ProviderChange):
    reason: str  # why the previous process was replaced


class ProviderHealthFailure(ProviderChange):
    error: str


# -- events --------------------------------------------------------------------------


class HostStarted(EventBase[HostInventory]):
    type: Literal["host_started"] = "host_started"


class HostHeartbeat(EventBase[HostInventory]):
    type: Literal["host_heartbeat"] = "host_heartbeat"


class HostStopped(EventBase[HostRef]):
    type: Literal["host_stopped"] = "host_stopped"


class HostDraining(EventBase[HostRef]):
    type: Literal["host_draining"] = "host_draining"


class Denial(Message):
    """What a host's policy refused to start (host.policy), and why."""

    host_id: str
    what: Literal["start_component", "start_provider"]
    reason: str
    component_id: str | None = None
    source: str | None = None  # redacted
    provider_id: str | None = None
    kind: str | None = None


class PolicyDenied(EventBase[Denial]):
    type: Literal["policy_denied"] = "policy_denied"


class LabelsChanged(EventBase[HostLabels]):
    type: Literal["labels_changed"] = "labels_changed"


class ComponentScaled(EventBase[ScaleDone]):
    type: Literal["component_scaled"] = "component_scaled"


class ComponentScaleFailed(EventBase[ScaleFailure]):
    type: Literal["component_scale_failed"] = "component_scale_failed"


class LinkSet(EventBase[Link]):
    type: Literal["link_set"] = "link_set"


class LinkDeleted(EventBase[Link]):
    type: Literal["link_deleted"] = "link_deleted"


class ConfigSet(EventBase[ConfigName]):
    type: Literal["config_set"] = "config_set"


class ConfigDeleted(EventBase[ConfigName]):
    type: Literal["config_deleted"] = "config_deleted"


class SpecChanged(EventBase[SpecChange]):
    type: Literal["spec_changed"] = "spec_changed"


class ProviderStarted(EventBase[ProviderChange]):
    type: Literal["provider_started"] = "provider_started"


class ProviderStopped(EventBase[ProviderStop]):
    type: Literal["provider_stopped"] = "provider_stopped"


class ProviderRestarted(EventBase[ProviderRestart]):
    type: Literal["provider_restarted"] = "provider_restarted"


class ProviderHealthFailed(EventBase[ProviderHealthFailure]):
    type: Literal["provider_health_failed"] = "provider_health_failed"


LatticeEvent = Annotated[
    HostStarted
    | HostHeartbeat
    | HostStopped
    | HostDraining
    | LabelsChanged
    | ComponentScaled
    | ComponentScaleFailed
    | LinkSet
    | LinkDeleted
    | ConfigSet
    | ConfigDeleted
    | SpecChanged
    | ProviderStarted
    | ProviderStopped
    | ProviderRestarted
    | ProviderHealthFailed
    | PolicyDenied,
    Field(discriminator="type"),
]

_EVENTS: TypeAdapter[LatticeEvent] = TypeAdapter(LatticeEvent)
# Every event class, and the types they stand for, in the union's order.
EVENT_MODELS: tuple[type[EventBase[Any]], ...] = get_args(get_args(LatticeEvent)[0])
EVENT_TYPES: tuple[str, ...] = tuple(model.event_type() for model in EVENT_MODELS)


def decode_event(data: bytes) -> LatticeEvent:
    """The event in a message; BadMessage names an unknown type or a wrong field."""
    raw = unpack_map(data, "a lattice event")
    try:
        return _EVENTS.validate_python(raw)
    except ValidationError as exc:
        raise BadMessage(f"invalid lattice event: {problems(exc)}") from exc


async def publish_event(nc: Client, subjects: Subjects, event: EventBase[Any]) -> None:
    """Publish ``event`` on its subject: the one way events reach the lattice."""
    await nc.publish(subjects.event(event.event_type(), event.source), encode(event))
