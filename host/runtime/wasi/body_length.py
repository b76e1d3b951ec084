"""The Content-Length an outgoing ``wasi:http`` body is held to, on either side.

A guest that declares a Content-Length on a response it sends (``http_response``)
or on a request it makes (``http_outgoing``) promises that many body bytes. The
host holds it to that, as wasmtime's wasi-http host does: the declared value is
parsed once, when the body is taken (an invalid one refuses the body), and a body
at odds with it fails with the side's ``error-code``, ``HTTP-response-body-size``
or ``HTTP-request-body-size``, carrying the bytes the guest wrote (refused ones
included, as wasmtime counts them).
"""

from __future__ import annotations

from typing import Literal

from host.runtime.wasi.values import Variant
from providers.http_messages import length_value

__all__ = ["Side", "body_size_error", "content_length"]

Side = Literal["request", "response"]
_MAX_LENGTH = 2**64 - 1  # a WIT u64, as wasmtime parses it


def content_length(fields: list[tuple[str, bytes]]) -> int | None:
    """The Content-Length the fields declare (None: none); ValueError naming what is wrong.

    Each value is digits (around them, spaces or tabs); several must agree.
    """
    lengths = set()
    for name, value in fields:
        if name != "content-length":
            continue
        length = length_value(value)
        if length is None or length > _MAX_LENGTH:
            raise ValueError(f"content-length {value!r} is not a non-negative integer")
        lengths.add(length)
    if len(lengths) > 1:
        raise ValueError(f"content-length has differing values {sorted(lengths)}")
    return lengths.pop() if lengths else None


def body_size_error(side: Side, written: int) -> Variant:
    """The ``error-code`` of a ``side`` body at odds with its Content-Length."""
    return Variant(f"HTTP-{side}-body-size", written)
