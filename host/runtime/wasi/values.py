"""Values of host functions in one spelling, whatever wasmtime-py would use.

wasmtime-py spells a variant, option or result value either as a ``Variant`` or
as the bare payload, depending on whether its cases' Python classes overlap
(``host.runtime.wit_values.WitCases``). That differs between types that look
alike (``result<u64, stream-error>`` is bare, ``result<_, stream-error>`` is
tagged), so the WASI implementations use the *plain* spelling instead, which the
host-function converters (``trampoline``, ``host.runtime.lowering`` with
``host_handles``) take and give directly:

- a result is ``Ok(value)`` or ``Err(value)`` (``Ok()`` for ``ok`` without a payload);
- an option is ``None`` or its payload;
- a variant case is ``Variant(tag, payload)``; an enum case its name;
- a resource handle in a parameter arrives as its ``rep`` (an int); one in a result
  is a ``HostHandle`` (``ResourceTable.own``).

A handle parameter converts to its rep in the trampoline; ``param_reader`` does
the same for handles inside another parameter (a result, option, variant or list).

The ``store`` these functions get is the host function's raw context (an int:
``host.runtime.wasi.trampoline``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasmtime import component as wc

from host.runtime.lowering import host_rep
from host.runtime.wit_types import (
    WitList,
    WitOpaque,
    WitOption,
    WitRecord,
    WitResult,
    WitTuple,
    WitType,
    WitVariant,
)
from host.runtime.wit_values import Err, HandleRef, Ok

__all__ = ["OK", "Err", "Ok", "Variant", "param_reader"]

Variant = wc.Variant
OK = Ok()  # ``ok`` without a payload, made once (Ok is frozen)
ReadParam = Callable[[Any, Any], Any]  # (store, lifted value) -> plain value


def param_reader(ty: WitType) -> ReadParam | None:
    """The handles inside a lifted parameter -> their reps; None: it holds none."""
    if isinstance(ty, WitOpaque):
        if ty.is_handle:
            return _rep
        return None
    if isinstance(ty, WitResult):
        ok = param_reader(ty.ok) if ty.ok is not None else None
        err = param_reader(ty.err) if ty.err is not None else None
        if ok is None and err is None:
            return None

        def result(store: Any, value: Any) -> Any:
            if isinstance(value, Ok):
                return value if ok is None else Ok(ok(store, value.value))
            return value if err is None else Err(err(store, value.value))

        return result
    if isinstance(ty, WitOption):
        some = param_reader(ty.payload)
        if some is None:
            return None
        return lambda store, value: None if value is None else some(store, value)
    if isinstance(ty, WitVariant):
        readers = {
            case.name: param_reader(p) if p is not None else None
            for case, p in zip(ty.cases.cases, ty.payloads, strict=True)
        }
        if all(r is None for r in readers.values()):
            return None

        def variant(store: Any, value: Any) -> Any:
            read = readers[value.tag]
            return value if read is None else Variant(value.tag, read(store, value.payload))

        return variant
    if isinstance(ty, WitList):
        element = param_reader(ty.element)
        if element is None:
            return None
        return lambda store, items: [element(store, i) for i in items]
    if isinstance(ty, WitRecord | WitTuple):
        return None  # no host function here takes a record or tuple holding handles
    return None


def _rep(context: int, handle: HandleRef) -> int:
    return host_rep(context, handle)
