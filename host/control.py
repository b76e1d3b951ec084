"""The control interface of one host: decode, validate, act, reply.

Each operation maps to a request model and a coroutine. Whatever goes wrong, the
caller gets a ``Reply`` naming it (URLs redacted: ``Reply.failure``): a message
that fails validation is ``bad_request``, an unknown component ``not_found``, a
component that cannot start ``failed``; the host keeps running either way.

The interface acts through ``HostOperations``, the few things a host does on
request; the daemon (``host.daemon``) is one. Links and named config are not
among them: they are desired state, written to JetStream KV by the CLI and the
controller (``lattice.client``); a host only reads them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from pydantic import BaseModel

from host.errors import HostError, UnknownComponent
from lattice.errors import BadMessage, LatticeError
from lattice.events import (
    ComponentScaled,
    ComponentScaleFailed,
    EventBase,
    HostDraining,
    HostLabels,
    HostRef,
    LabelsChanged,
    ScaleDone,
    ScaleFailure,
)
from lattice.messages import (
    Empty,
    HostInventory,
    LabelDel,
    LabelPut,
    ProviderDescription,
    Reply,
    ScaleComponent,
    StartProvider,
    StopComponent,
    StopHost,
    StopProvider,
    decode,
)
from lattice.redact import redacted, redacted_text
from lattice.subjects import Subjects
from providers.launch import BadProviderConfig

log = logging.getLogger(__name__)

Operation = tuple[type[BaseModel], Callable[[Any], Awaitable[Reply]]]


class HostOperations(Protocol):
    """What the control interface asks of a host."""

    @property
    def host_id(self) -> str: ...

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def draining(self) -> bool: ...

    def inventory(self) -> HostInventory: ...

    async def apply(self, request: ScaleComponent) -> None:
        """Run ``request.count`` replicas (0 stops the component)."""

    def desired(self, component_id: str) -> ScaleComponent | None:
        """The request the component runs by, if it runs here."""

    def set_label(self, key: str, value: str) -> None: ...

    def delete_label(self, key: str) -> bool:
        """False if there was no such label."""

    def drain(self) -> None:
        """Take no new replicas from now on."""

    def request_stop(self, drain_timeout_s: float) -> None: ...

    async def start_provider(self, request: StartProvider) -> ProviderDescription: ...

    async def stop_provider(self, provider_id: str) -> ProviderDescription | None:
        """None if no such provider runs here."""

    async def publish(self, event: EventBase[Any]) -> None: ...

    def in_turn(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold ``key``'s turn: requests with one key apply in arrival order."""


class ControlInterface:
    def __init__(self, host: HostOperations, subjects: Subjects) -> None:
        self.host = host
        self.subjects = subjects
        self.operations: dict[str, Operation] = {
            "component.scale": (ScaleComponent, self.scale),
            "component.stop": (StopComponent, self.stop_component),
            "label.put": (LabelPut, self.label_put),
            "label.del": (LabelDel, self.label_del),
            "inventory": (Empty, self.inventory),
            "stop": (StopHost, self.stop_host),
            "drain": (Empty, self.drain),
            # out-of-process providers (host/supervisor.py)
            "provider.start": (StartProvider, self.provider_start),
            "provider.stop": (StopProvider, self.provider_stop),
        }

    async def handle(self, subject: str, data: bytes) -> Reply:
        operation = self.subjects.operation_of(subject)
        entry = self.operations.get(operation)
        if entry is None:
            known = ", ".join(sorted(self.operations))
            return Reply.failure("bad_request", f"unknown operation {operation!r} (known: {known})")
        model, action = entry
        try:
            request = decode(model, data)
        except BadMessage as exc:
            return Reply.failure("bad_request", str(exc))
        key = _ordering_key(operation, request)
        if key is None:
            return await self._act(action, request)
        async with self.host.in_turn(key):
            return await self._act(action, request)

    async def _act(self, action: Callable[[Any], Awaitable[Reply]], request: BaseModel) -> Reply:
        if self.host.draining and isinstance(request, ScaleComponent) and request.count > 0:
            return Reply.failure(
                "unavailable", f"host {self.host.host_id} is draining: it takes no new replicas"
            )
        try:
            return await action(request)
        except UnknownComponent as exc:
            return Reply.failure("not_found", str(exc))
        except (HostError, LatticeError, LookupError, ValueError) as exc:
            return Reply.failure("failed", str(exc))

    async def ping(self, _subject: str, _data: bytes) -> Reply:
        return Reply.success(self.host.inventory().model_dump(mode="json"))

    # -- components ----------------------------------------------------------

    async def scale(self, request: ScaleComponent) -> Reply:
        host_id = self.host.host_id
        try:
            await self.host.apply(request)
        except Exception as exc:
            failure = ScaleFailure(
                host_id=host_id,
                component_id=request.component_id,
                count=request.count,
                error=redacted_text(str(exc)),
            )
            await self.host.publish(ComponentScaleFailed(source=host_id, data=failure))
            raise
        done = ScaleDone(
            host_id=host_id,
            component_id=request.component_id,
            count=request.count,
            # Events go to every subscriber of the lattice: the source as it may be shown.
            source=redacted(request.source),
            annotations=request.annotations,
        )
        await self.host.publish(ComponentScaled(source=host_id, data=done))
        return Reply.success({"component_id": request.component_id, "count": request.count})

    async def stop_component(self, request: StopComponent) -> Reply:
        current = self.host.desired(request.component_id)
        if current is None:
            raise UnknownComponent(
                f"no component {request.component_id!r} runs on host {self.host.host_id}"
            )
        return await self.scale(current.model_copy(update={"count": 0}))

    # -- out-of-process providers (host/supervisor.py) ---------------------------

    async def provider_start(self, request: StartProvider) -> Reply:
        try:
            description = await self.host.start_provider(request)
        except BadProviderConfig as exc:
            return Reply.failure("bad_request", str(exc))
        return Reply.success(description.model_dump(mode="json"))

    async def provider_stop(self, request: StopProvider) -> Reply:
        description = await self.host.stop_provider(request.provider_id)
        if description is None:
            host_id = self.host.host_id
            return Reply.failure(
                "not_found", f"no provider {request.provider_id!r} runs on host {host_id}"
            )
        return Reply.success(description.model_dump(mode="json"))

    # -- labels, inventory, stop -----------------------------------------------

    async def label_put(self, request: LabelPut) -> Reply:
        self.host.set_label(request.key, request.value)
        await self._labels_changed()
        return Reply.success(self.host.labels)

    async def label_del(self, request: LabelDel) -> Reply:
        if not self.host.delete_label(request.key):
            raise UnknownComponent(f"host {self.host.host_id} has no label {request.key!r}")
        await self._labels_changed()
        return Reply.success(self.host.labels)

    async def _labels_changed(self) -> None:
        host_id = self.host.host_id
        labels = HostLabels(host_id=host_id, labels=self.host.labels)
        await self.host.publish(LabelsChanged(source=host_id, data=labels))

    async def inventory(self, _request: Empty) -> Reply:
        return Reply.success(self.host.inventory().model_dump(mode="json"))

    async def drain(self, _request: Empty) -> Reply:
        """Take no new replicas; the controller moves the current ones elsewhere."""
        self.host.drain()
        host_id = self.host.host_id
        await self.host.publish(HostDraining(source=host_id, data=HostRef(host_id=host_id)))
        return Reply.success(self.host.inventory().model_dump(mode="json"))

    async def stop_host(self, request: StopHost) -> Reply:
        # Reply first, then stop: the caller learns the stop was accepted.
        asyncio.get_running_loop().call_later(0.05, self.host.request_stop, request.drain_timeout_s)
        return Reply.success({"host_id": self.host.host_id, "stopping": True})


def component_key(component_id: str) -> str:
    """The ordering key of requests about one component."""
    return f"component_id:{component_id}"


def _ordering_key(operation: str, request: BaseModel) -> str | None:
    """Requests with one key apply in arrival order; other keys run alongside.

    Component and provider operations are ordered per id, the rest per family
    (all label changes in order, ...); reads need no order.
    """
    for field in ("component_id", "provider_id"):
        value = getattr(request, field, None)
        if isinstance(value, str):
            return f"{field}:{value}"
    if operation == "inventory":
        return None
    return operation.split(".")[0]
