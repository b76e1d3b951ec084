"""Lattice state that survives restarts: links and named config, in JetStream KV.

Writers store the value, then publish the matching event so hosts re-bind the
components it concerns; a host that was down re-reads everything at start.

The writer of a keyvalue link also creates the JetStream buckets it names: a host
may use buckets but not create streams (a stream can capture any subject of the
lattice, see ``lattice.auth``).
"""

from __future__ import annotations

from typing import Any

import msgpack
from nats.aio.client import Client

from lattice.errors import KeyValueFailure
from lattice.events import (
    ConfigDeleted,
    ConfigName,
    ConfigSet,
    EventBase,
    LinkDeleted,
    LinkSet,
    publish_event,
)
from lattice.kv import Bucket, open_bucket
from lattice.messages import Link, decode, encode
from lattice.subjects import Subjects


class LatticeState:
    def __init__(self, nc: Client, subjects: Subjects, source: str) -> None:
        self.nc = nc
        self.subjects = subjects
        self.source = source
        self._links: Bucket | None = None
        self._config: Bucket | None = None

    async def _links_bucket(self) -> Bucket:
        if self._links is None:
            self._links = await open_bucket(self.nc, self.subjects.links_bucket)
        return self._links

    async def _config_bucket(self) -> Bucket:
        if self._config is None:
            self._config = await open_bucket(self.nc, self.subjects.config_bucket)
        return self._config

    async def _publish(self, event: EventBase[Any]) -> None:
        await publish_event(self.nc, self.subjects, event)

    # -- links -------------------------------------------------------------

    async def put_link(self, link: Link) -> None:
        for name in jetstream_buckets_of(link):
            await open_bucket(self.nc, name)
        bucket = await self._links_bucket()
        await bucket.put(link.key, encode(link))
        await self._publish(LinkSet(source=self.source, data=link))

    async def delete_link(self, key: str) -> bool:
        bucket = await self._links_bucket()
        existing = await bucket.get(key)
        if existing is None:
            return False
        await bucket.remove(key)
        link = decode(Link, existing)
        await self._publish(LinkDeleted(source=self.source, data=link))
        return True

    async def links(self, source_id: str | None = None) -> list[Link]:
        bucket = await self._links_bucket()
        found = [decode(Link, raw) for raw in (await bucket.items()).values()]
        return [link for link in found if source_id is None or link.source_id == source_id]

    async def links_of(self, component_id: str) -> tuple[list[Link], list[Link]]:
        """(links from, links to) a component, from one read of the bucket."""
        every = await self.links()
        return (
            [link for link in every if link.source_id == component_id],
            [link for link in every if link.target == component_id],
        )

    # -- named config --------------------------------------------------------

    async def put_config(self, name: str, values: dict[str, str]) -> None:
        bucket = await self._config_bucket()
        await bucket.put(name, msgpack.packb(values))
        await self._publish(ConfigSet(source=self.source, data=ConfigName(name=name)))

    async def get_config(self, name: str) -> dict[str, str] | None:
        bucket = await self._config_bucket()
        raw = await bucket.get(name)
        if raw is None:
            return None
        values = msgpack.unpackb(raw)
        if not isinstance(values, dict):
            raise KeyValueFailure(f"config {name} is corrupt")
        return {str(k): str(v) for k, v in values.items()}

    async def delete_config(self, name: str) -> bool:
        bucket = await self._config_bucket()
        if await bucket.get(name) is None:
            return False
        await bucket.remove(name)
        await self._publish(ConfigDeleted(source=self.source, data=ConfigName(name=name)))
        return True

    async def config_names(self) -> list[str]:
        return await (await self._config_bucket()).keys()


# The provider kind whose links name buckets (providers.contracts; lattice sits below).
KEYVALUE = "keyvalue"


def jetstream_buckets_of(link: Link) -> list[str]:
    """The JetStream KV buckets a keyvalue link names (``bucket``, ``bucket.<id>``).

    None for a link to an out-of-process provider (``provider=``) or another backend:
    its buckets live elsewhere.
    """
    config = link.config
    if link.target != KEYVALUE or config.get("provider") or config.get("backend", "nats") != "nats":
        return []
    return sorted(
        {v for k, v in config.items() if (k == "bucket" or k.startswith("bucket.")) and v}
    )
