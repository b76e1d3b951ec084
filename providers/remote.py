"""Keyvalue across processes: serve a backend over NATS, and use one that is served.

An out-of-process provider (``python -m providers.run``) runs ``serve_keyvalue``:
it answers ``KvRequest``s on ``P.L.prov.<provider-id>.kv`` in a queue group
named after the provider, so several replicas (on any nodes) share the load and
a restarted replica simply joins the group again. A host whose component links
keyvalue with config ``provider=<id>`` gets a ``RemoteKeyValue`` for it: the
same ``KeyValueBackend`` protocol as the in-process backends, so the bindings
cannot tell the difference.

Nothing is cached on the host side: a provider that is down or restarting makes
calls fail with ``KeyValueError("other", ...)`` (the component decides what to
do, e.g. answer 500) and calls work again as soon as a replica answers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from lattice import tracing
from lattice.connection import Connection
from lattice.errors import BadMessage, LatticeError
from lattice.messages import Reply, decode
from lattice.provider_messages import (
    KV_OPERATION,
    KvReply,
    KvRequest,
    health_operation,
)
from lattice.responder import Responder
from lattice.rpc import request, serve
from lattice.subjects import Subjects, check_token
from providers.keyvalue import KeyValueBackend, KeyValueError

log = logging.getLogger(__name__)

# Below the host's 5 s limit on one provider call, so the component gets
# error::other (and can answer) instead of a trap.
DEFAULT_TIMEOUT_S = 3.0
# Calls one provider process handles at once.
DEFAULT_CONCURRENCY = 8


@runtime_checkable
class Pingable(Protocol):
    async def ping(self) -> None: ...


@dataclass
class KeyValueService:
    """The responders of one served backend; ``close()`` stops answering."""

    provider_id: str
    instance_id: str
    responders: list[Responder] = field(default_factory=list)

    async def close(self) -> None:
        responders, self.responders = self.responders, []
        for responder in responders:
            await responder.close()


# -- the provider side ----------------------------------------------------------


async def serve_keyvalue(
    nc: Connection,
    subjects: Subjects,
    provider_id: str,
    backend: KeyValueBackend,
    *,
    instance_id: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    host_id: str = "",
) -> KeyValueService:
    """Serve ``backend`` as provider ``provider_id``: kv in a queue group, and health."""
    instance = instance_id or f"pid{os.getpid()}"
    check_token("instance id", instance)

    async def on_kv(_subject: str, data: bytes) -> Reply:
        return Reply.success((await _kv(backend, decode(KvRequest, data))).model_dump(mode="json"))

    async def on_health(_subject: str, _data: bytes) -> Reply:
        return await _health(backend, provider_id, instance)

    service = KeyValueService(provider_id, instance)
    kv_subject = subjects.provider(provider_id, KV_OPERATION)
    service.responders.append(
        await serve(
            nc,
            kv_subject,
            on_kv,
            queue=provider_id,
            concurrency=concurrency,
            span=f"provider {provider_id} keyvalue",
            host_id=host_id,
        )
    )
    for operation in (health_operation(), health_operation(instance)):
        service.responders.append(
            await serve(nc, subjects.provider(provider_id, operation), on_health)
        )
    return service


async def _kv(backend: KeyValueBackend, req: KvRequest) -> KvReply:
    """One operation on the backend; its KeyValueError travels back as data."""
    try:
        if req.op == "get":
            return KvReply(ok=True, value=await backend.get(req.bucket, req.key))
        if req.op == "set":
            await backend.set(req.bucket, req.key, req.value or b"")
        elif req.op == "delete":
            await backend.delete(req.bucket, req.key)
        elif req.op == "exists":
            return KvReply(ok=True, exists=await backend.exists(req.bucket, req.key))
        elif req.op == "keys":
            return KvReply(ok=True, keys=await backend.keys(req.bucket))
        else:  # increment: the Literal leaves nothing else
            return KvReply(ok=True, count=await backend.increment(req.bucket, req.key, req.delta))
    except KeyValueError as exc:
        return KvReply(ok=False, error_kind=exc.kind, error=str(exc))
    return KvReply(ok=True)


async def _health(backend: KeyValueBackend, provider_id: str, instance: str) -> Reply:
    if isinstance(backend, Pingable):
        try:
            await backend.ping()
        except KeyValueError as exc:
            return Reply.failure("unavailable", f"provider {provider_id}: {exc}")
    return Reply.success({"provider_id": provider_id, "instance_id": instance, "pid": os.getpid()})


# -- the host side ------------------------------------------------------------------


class RemoteKeyValue:
    """KeyValueBackend that sends each call to provider ``provider_id`` over NATS."""

    def __init__(
        self,
        nc: Connection,
        subjects: Subjects,
        provider_id: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.nc = nc
        self.provider_id = check_token("provider id", provider_id)
        self.subject = subjects.provider(provider_id, KV_OPERATION)
        self.timeout_s = timeout_s

    async def _call(self, req: KvRequest) -> KvReply:
        who = f"provider {self.provider_id}"
        with tracing.client_span(f"keyvalue {req.op} via {who}") as headers:
            return await self._send(req, who, headers)

    async def _send(self, req: KvRequest, who: str, headers: dict[str, str]) -> KvReply:
        try:
            reply = await request(
                self.nc, self.subject, req, timeout_s=self.timeout_s, who=who, headers=headers
            )
            if not reply.ok:
                raise KeyValueError("other", f"{who}: {reply.error}")
            answer = KvReply.from_data(reply.data)
        except BadMessage as exc:
            raise KeyValueError("other", f"{who} sent a bad reply: {exc}") from exc
        except LatticeError as exc:  # no responders, timeout, connection closed
            raise KeyValueError("other", f"{who} did not answer: {exc}") from exc
        if not answer.ok:
            raise KeyValueError(answer.error_kind or "other", answer.error or "")
        return answer

    async def get(self, bucket: str, key: str) -> bytes | None:
        return (await self._call(KvRequest(op="get", bucket=bucket, key=key))).value

    async def set(self, bucket: str, key: str, value: bytes) -> None:
        await self._call(KvRequest(op="set", bucket=bucket, key=key, value=value))

    async def delete(self, bucket: str, key: str) -> None:
        await self._call(KvRequest(op="delete", bucket=bucket, key=key))

    async def exists(self, bucket: str, key: str) -> bool:
        return (await self._call(KvRequest(op="exists", bucket=bucket, key=key))).exists

    async def keys(self, bucket: str) -> list[str]:
        return (await self._call(KvRequest(op="keys", bucket=bucket))).keys

    async def increment(self, bucket: str, key: str, delta: int) -> int:
        req = KvRequest(op="increment", bucket=bucket, key=key, delta=delta)
        return (await self._call(req)).count


def remote_backend_name(provider_id: str) -> str:
    """The runtime's name for the backend of provider ``provider_id``."""
    return f"provider:{provider_id}"
