"""The control interface of one host: decode, validate, act, reply.

Each operation maps to a request model and a coroutine. Whatever goes wrong, the
caller gets a ``Reply`` naming it: a message that fails validation is
``bad_request``, an unknown component ``not_found``, a component that cannot
start ``failed``; the host keeps running either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from host.errors import HostError, UnknownComponent
from lattice.errors import BadMessage, LatticeError
from lattice.events import (
    ComponentScaled,
    ComponentScaleFailed,
    HostDraining,
    HostLabels,
    HostRef,
    LabelsChanged,
    ScaleDone,
    ScaleFailure,
)
from lattice.messages import (
    ConfigPut,
    ConfigRef,
    Empty,
    LabelDel,
    LabelPut,
    Link,
    LinkRef,
    Reply,
    ScaleComponent,
    StartProvider,
    StopComponent,
    StopHost,
    StopProvider,
    decode,
)
from providers.launch import BadProviderConfig

if TYPE_CHECKING:
    from host.daemon import HostDaemon

log = logging.getLogger(__name__)

Operation = tuple[type[BaseModel], Callable[[Any], Awaitable[Reply]]]


class ControlInterface:
    def __init__(self, daemon: HostDaemon) -> None:
        self.daemon = daemon
        self.operations: dict[str, Operation] = {
            "component.scale": (ScaleComponent, self.scale),
            "component.stop": (StopComponent, self.stop_component),
            "link.put": (Link, self.link_put),
            "link.del": (LinkRef, self.link_del),
            "link.get": (Empty, self.link_get),
            "config.put": (ConfigPut, self.config_put),
            "config.get": (ConfigRef, self.config_get),
            "config.del": (ConfigRef, self.config_del),
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
        operation = self.daemon.subjects.operation_of(subject)
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
        async with self.daemon.ordered.hold(key):
            return await self._act(action, request)

    async def _act(self, action: Callable[[Any], Awaitable[Reply]], request: BaseModel) -> Reply:
        if self.daemon.draining and isinstance(request, ScaleComponent) and request.count > 0:
            return Reply.failure(
                "unavailable", f"host {self.daemon.host_id} is draining: it takes no new replicas"
            )
        try:
            return await action(request)
        except UnknownComponent as exc:
            return Reply.failure("not_found", str(exc))
        except (HostError, LatticeError, LookupError, ValueError) as exc:
            return Reply.failure("failed", str(exc))

    async def ping(self, _subject: str, _data: bytes) -> Reply:
        return Reply.success(self.daemon.inventory().model_dump(mode="json"))

    # -- components ----------------------------------------------------------

    async def scale(self, request: ScaleComponent) -> Reply:
        host_id = self.daemon.host_id
        try:
            await self.daemon.apply(request)
        except Exception as exc:
            failure = ScaleFailure(
                host_id=host_id,
                component_id=request.component_id,
                count=request.count,
                error=str(exc),
            )
            await self.daemon.publish(ComponentScaleFailed(source=host_id, data=failure))
            raise
        done = ScaleDone(
            host_id=host_id,
            component_id=request.component_id,
            count=request.count,
            source=request.source,
            annotations=request.annotations,
        )
        await self.daemon.publish(ComponentScaled(source=host_id, data=done))
        return Reply.success({"component_id": request.component_id, "count": request.count})

    async def stop_component(self, request: StopComponent) -> Reply:
        current = self.daemon.desired.get(request.component_id)
        if current is None:
            raise UnknownComponent(
                f"no component {request.component_id!r} runs on host {self.daemon.host_id}"
            )
        return await self.scale(current.model_copy(update={"count": 0}))

    # -- links and config ------------------------------------------------------

    async def link_put(self, link: Link) -> Reply:
        assert self.daemon.state is not None
        await self.daemon.state.put_link(link)
        return Reply.success({"key": link.key})

    async def link_del(self, ref: LinkRef) -> Reply:
        assert self.daemon.state is not None
        if not await self.daemon.state.delete_link(ref.key):
            raise UnknownComponent(f"no link {ref.key}")
        return Reply.success({"key": ref.key})

    async def link_get(self, _request: Empty) -> Reply:
        assert self.daemon.state is not None
        links = await self.daemon.state.links()
        return Reply.success([link.model_dump(mode="json") for link in links])

    async def config_put(self, request: ConfigPut) -> Reply:
        assert self.daemon.state is not None
        await self.daemon.state.put_config(request.name, request.values)
        return Reply.success({"name": request.name})

    async def config_get(self, request: ConfigRef) -> Reply:
        assert self.daemon.state is not None
        values = await self.daemon.state.get_config(request.name)
        if values is None:
            raise UnknownComponent(f"no named config {request.name!r}")
        return Reply.success(values)

    async def config_del(self, request: ConfigRef) -> Reply:
        assert self.daemon.state is not None
        if not await self.daemon.state.delete_config(request.name):
            raise UnknownComponent(f"no named config {request.name!r}")
        return Reply.success({"name": request.name})

    # -- out-of-process providers (host/supervisor.py) ---------------------------

    async def provider_start(self, request: StartProvider) -> Reply:
        assert self.daemon.supervisor is not None
        try:
            description = await self.daemon.supervisor.start(request)
        except BadProviderConfig as exc:
            return Reply.failure("bad_request", str(exc))
        return Reply.success(description.model_dump(mode="json"))

    async def provider_stop(self, request: StopProvider) -> Reply:
        assert self.daemon.supervisor is not None
        description = await self.daemon.supervisor.stop(request.provider_id)
        if description is None:
            host_id = self.daemon.host_id
            return Reply.failure(
                "not_found", f"no provider {request.provider_id!r} runs on host {host_id}"
            )
        return Reply.success(description.model_dump(mode="json"))

    # -- labels, inventory, stop -----------------------------------------------

    async def label_put(self, request: LabelPut) -> Reply:
        self.daemon.labels[request.key] = request.value
        await self._labels_changed()
        return Reply.success(self.daemon.labels)

    async def label_del(self, request: LabelDel) -> Reply:
        if self.daemon.labels.pop(request.key, None) is None:
            raise UnknownComponent(f"host {self.daemon.host_id} has no label {request.key!r}")
        await self._labels_changed()
        return Reply.success(self.daemon.labels)

    async def _labels_changed(self) -> None:
        host_id = self.daemon.host_id
        labels = HostLabels(host_id=host_id, labels=self.daemon.labels)
        await self.daemon.publish(LabelsChanged(source=host_id, data=labels))

    async def inventory(self, _request: Empty) -> Reply:
        return Reply.success(self.daemon.inventory().model_dump(mode="json"))

    async def drain(self, _request: Empty) -> Reply:
        """Take no new replicas; the controller moves the current ones elsewhere."""
        self.daemon.draining = True
        host_id = self.daemon.host_id
        await self.daemon.publish(HostDraining(source=host_id, data=HostRef(host_id=host_id)))
        return Reply.success(self.daemon.inventory().model_dump(mode="json"))

    async def stop_host(self, request: StopHost) -> Reply:
        # Reply first, then stop: the caller learns the stop was accepted.
        asyncio.get_running_loop().call_later(
            0.05, self.daemon.request_stop, request.drain_timeout_s
        )
        return Reply.success({"host_id": self.daemon.host_id, "stopping": True})


def component_key(component_id: str) -> str:
    """The ordering key of requests about one component."""
    return f"component_id:{component_id}"


def _ordering_key(operation: str, request: BaseModel) -> str | None:
    """Requests with one key apply in arrival order; other keys run alongside.

    Component and provider operations are ordered per id, the rest per family
    (all link changes in order, all config changes, ...); reads need no order.
    """
    for field in ("component_id", "provider_id"):
        value = getattr(request, field, None)
        if isinstance(value, str):
            return f"{field}:{value}"
    if operation in ("inventory", "link.get", "config.get"):
        return None
    return operation.split(".")[0]
