"""Messages between components' hosts and out-of-process providers.

A provider process (``python -m providers.run``) serves its operations on
``P.L.prov.<provider-id>.<operation>`` (see ``lattice.subjects``); both sides
import the models from here, below ``host`` and ``providers``.

Keyvalue (operation ``kv``, queue group = provider id, so replicas share the
load): a ``KvRequest`` is answered with a ``Reply`` whose ``data`` is a
``KvReply``. A ``Reply`` error means the request never reached the backend (bad
message, provider failure); a ``KvReply`` with ``ok=False`` carries the
backend's own ``KeyValueError`` kind and message.

Health: ``health`` (any replica) and ``health.<instance-id>`` (one process, for
its supervisor) answer ``Reply.success`` only while the backend is reachable.

Values are bytes, but every message travels as ``model_dump(mode="json")``
packed with msgpack, where pydantic would turn bytes into UTF-8 text (and fail
on anything else); ``WireBytes`` carries them as base64 text instead.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationError, model_validator

from lattice.errors import BadMessage
from lattice.messages import Message

KV_OPERATION = "kv"
HEALTH_OPERATION = "health"

KvOp = Literal["get", "set", "delete", "exists", "keys", "increment"]


def health_operation(instance_id: str | None = None) -> str:
    """``health`` for any replica, ``health.<instance-id>`` for one process."""
    return f"{HEALTH_OPERATION}.{instance_id}" if instance_id else HEALTH_OPERATION


def _from_wire(value: Any) -> Any:
    # Text on the wire is always base64 (see _to_wire); bytes come from Python callers.
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError("bytes must be base64 text") from exc
    return value


def _to_wire(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


WireBytes = Annotated[
    bytes, BeforeValidator(_from_wire), PlainSerializer(_to_wire, when_used="json")
]


class KvRequest(Message):
    op: KvOp
    bucket: str = Field(min_length=1)
    key: str = ""  # may be empty: the backends accept any string as a key
    value: WireBytes | None = None
    delta: int = 0

    @model_validator(mode="after")
    def _complete(self) -> KvRequest:
        if self.op == "set" and self.value is None:
            raise ValueError("set needs a value")
        return self


class KvReply(Message):
    ok: bool
    value: WireBytes | None = None  # get (None: no such key)
    keys: list[str] = Field(default_factory=list)  # keys
    count: int = 0  # increment: the new value
    exists: bool = False  # exists
    error_kind: str | None = None  # a KeyValueError kind when not ok
    error: str | None = None

    @staticmethod
    def from_data(data: Any) -> KvReply:
        """The ``KvReply`` in a ``Reply``'s data; BadMessage if it is not one."""
        try:
            return KvReply.model_validate(data)
        except ValidationError as exc:
            raise BadMessage(f"invalid KvReply: {exc.error_count()} problem(s): {exc}") from exc
