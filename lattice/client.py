"""The control-interface client used by the CLI, the controller and tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from nats.aio.client import Client

from lattice.events import LatticeEvent, decode_event
from lattice.messages import (
    ConfigPut,
    ConfigRef,
    Empty,
    HostInventory,
    LabelDel,
    LabelPut,
    Link,
    LinkRef,
    ProviderDescription,
    ScaleComponent,
    StartProvider,
    StopComponent,
    StopHost,
    StopProvider,
)
from lattice.rpc import request_ok, scatter
from lattice.state import LatticeState
from lattice.subjects import Subjects


class LatticeClient:
    def __init__(
        self, nc: Client, subjects: Subjects | None = None, timeout_s: float = 2.0
    ) -> None:
        self.nc = nc
        self.subjects = subjects or Subjects()
        self.timeout_s = timeout_s
        self.state = LatticeState(nc, self.subjects, source="client")

    async def _host_call(
        self, host_id: str, operation: str, message: Any, timeout_s: float | None = None
    ) -> Any:
        reply = await request_ok(
            self.nc,
            self.subjects.host_control(host_id, operation),
            message,
            timeout_s=timeout_s or self.timeout_s,
            who=f"host {host_id}",
        )
        return reply.data

    # -- hosts -----------------------------------------------------------------

    async def hosts(self, wait_s: float = 0.3) -> list[HostInventory]:
        """Every host that answers a ping within ``wait_s``, sorted by id."""
        replies = await scatter(self.nc, self.subjects.ping, Empty(), wait_s=wait_s)
        hosts = [HostInventory.model_validate(r.data) for r in replies if r.ok]
        return sorted(hosts, key=lambda h: h.host_id)

    async def inventory(self, host_id: str) -> HostInventory:
        return HostInventory.model_validate(await self._host_call(host_id, "inventory", Empty()))

    async def stop_host(self, host_id: str, drain_timeout_s: float = 10.0) -> Any:
        return await self._host_call(host_id, "stop", StopHost(drain_timeout_s=drain_timeout_s))

    async def drain_host(self, host_id: str) -> HostInventory:
        data = await self._host_call(host_id, "drain", Empty())
        return HostInventory.model_validate(data)

    async def put_label(self, host_id: str, key: str, value: str) -> Any:
        return await self._host_call(host_id, "label.put", LabelPut(key=key, value=value))

    async def delete_label(self, host_id: str, key: str) -> Any:
        return await self._host_call(host_id, "label.del", LabelDel(key=key))

    # -- components ----------------------------------------------------------------

    async def scale(self, host_id: str, request: ScaleComponent, timeout_s: float = 60.0) -> Any:
        # Generous default: a first start may fetch and compile a large component.
        return await self._host_call(host_id, "component.scale", request, timeout_s)

    async def stop_component(self, host_id: str, component_id: str) -> Any:
        return await self._host_call(
            host_id, "component.stop", StopComponent(component_id=component_id)
        )

    # -- out-of-process providers (supervised by the host that starts them) ---------

    async def start_provider(
        self, host_id: str, request: StartProvider, timeout_s: float = 30.0
    ) -> ProviderDescription:
        # Generous: the host answers once the new process is healthy (or gave up).
        data = await self._host_call(host_id, "provider.start", request, timeout_s)
        return ProviderDescription.model_validate(data)

    async def stop_provider(
        self, host_id: str, provider_id: str, timeout_s: float = 15.0
    ) -> ProviderDescription:
        request = StopProvider(provider_id=provider_id)
        data = await self._host_call(host_id, "provider.stop", request, timeout_s)
        return ProviderDescription.model_validate(data)

    # -- links and config (straight to JetStream: works with no host running) ------

    async def put_link(self, link: Link) -> None:
        await self.state.put_link(link)

    async def delete_link(self, ref: LinkRef) -> bool:
        return await self.state.delete_link(ref.key)

    async def links(self, source_id: str | None = None) -> list[Link]:
        return await self.state.links(source_id)

    async def put_config(self, name: str, values: dict[str, str]) -> None:
        ConfigPut(name=name, values=values)  # validates the name
        await self.state.put_config(name, values)

    async def get_config(self, name: str) -> dict[str, str] | None:
        ConfigRef(name=name)
        return await self.state.get_config(name)

    async def delete_config(self, name: str) -> bool:
        return await self.state.delete_config(name)

    # -- events --------------------------------------------------------------------

    async def events(self) -> AsyncIterator[LatticeEvent]:
        """Every lattice event as it happens (heartbeats included)."""
        queue: asyncio.Queue[LatticeEvent] = asyncio.Queue()

        async def on_event(msg: Any) -> None:
            try:
                queue.put_nowait(decode_event(msg.data))
            except Exception:  # a bad event must not stop the tail
                return

        sub = await self.nc.subscribe(self.subjects.all_events, cb=on_event)
        try:
            while True:
                yield await queue.get()
        finally:
            await sub.unsubscribe()
