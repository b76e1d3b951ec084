"""Values of host functions in one spelling, whatever wasmtime-py expects.

wasmtime-py spells a variant, option or result value either as a ``Variant`` or
as the bare payload, depending on whether its cases' Python classes overlap
(``host.runtime.wit_values.WitCases``). That differs between types that look
alike (``result<u64, stream-error>`` is bare, ``result<_, stream-error>`` is
tagged), so the WASI implementations never spell values themselves. They
return *plain* values, and ``result_writer`` / ``param_reader`` translate once
per function, from the function's type as the component imports it:

- a result is ``Ok(value)`` or ``Err(value)`` (``Ok()`` for ``ok`` without a payload);
- an option is ``None`` or its payload;
- a variant case is ``Variant(tag, payload)``; an enum case its name;
- a resource handle in a parameter arrives as its ``rep`` (an int); one in a result
  is a ``HostHandle`` (``ResourceTable.own``).

The ``store`` these functions get is the host function's raw context (an int:
``host.runtime.wasi.trampoline``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from host.runtime.wit_values import HandleRef

__all__ = ["Err", "Ok", "Variant", "param_reader", "result_writer"]

Variant = wc.Variant
Convert = Callable[[Any], Any]
ReadParam = Callable[[Any, Any], Any]  # (store, value) -> plain value


@dataclass(frozen=True, slots=True)
class Ok:
    value: Any = None


@dataclass(frozen=True, slots=True)
class Err:
    value: Any = None


def _identity(value: Any) -> Any:
    return value


def result_writer(ty: WitType | None) -> Convert:
    """Plain value -> wasmtime-py's value of ``ty`` (compiled once per function)."""
    if ty is None:
        return _identity
    return _writer(ty) or _identity


def _writer(ty: WitType) -> Convert | None:
    """A converter, or None where the plain value already is wasmtime-py's."""
    if isinstance(ty, WitResult):
        cases = ty.cases
        ok_case, err_case = cases.named("ok"), cases.named("err")
        assert ok_case is not None and err_case is not None
        ok = _writer(ty.ok) if ty.ok is not None else None
        err = _writer(ty.err) if ty.err is not None else None

        def result(value: Any) -> Any:
            if isinstance(value, Ok):
                payload = value.value if ok is None else ok(value.value)
                return cases.value(ok_case, payload)
            if isinstance(value, Err):
                payload = value.value if err is None else err(value.value)
                return cases.value(err_case, payload)
            raise TypeError(f"a result is Ok(...) or Err(...), not {value!r}")

        return result
    if isinstance(ty, WitOption):
        some = _writer(ty.payload)
        if not ty.cases.tagged and some is None:
            return None
        none_case, some_case = ty.cases.named("none"), ty.cases.named("some")
        assert none_case is not None and some_case is not None
        options = ty.cases

        def option(value: Any) -> Any:
            if value is None:
                return options.value(none_case, None)
            return options.value(some_case, value if some is None else some(value))

        return option
    if isinstance(ty, WitVariant):
        variants = ty.cases
        payloads = {case.name: p for case, p in zip(variants.cases, ty.payloads, strict=True)}
        writers = {name: _writer(p) if p is not None else None for name, p in payloads.items()}

        def variant(value: Any) -> Any:
            case = variants.named(value.tag)
            if case is None:
                raise ValueError(f"no case {value.tag!r} in this variant")
            write = writers[case.name]
            payload = value.payload if write is None else write(value.payload)
            return variants.value(case, payload)

        return variant
    if isinstance(ty, WitList):
        element = _writer(ty.element)
        return None if element is None else (lambda items: [element(i) for i in items])
    if isinstance(ty, WitTuple):
        parts = [_writer(e) for e in ty.elements]
        if all(p is None for p in parts):
            return None
        return lambda items: tuple(
            v if p is None else p(v) for p, v in zip(parts, items, strict=True)
        )
    return None


def param_reader(ty: WitType) -> ReadParam | None:
    """wasmtime-py's value of a parameter -> its plain value; None: nothing to do."""
    if isinstance(ty, WitOpaque):
        if isinstance(ty.native, wc.OwnType | wc.BorrowType):
            return _rep
        return None
    if isinstance(ty, WitResult):
        cases = ty.cases
        ok = param_reader(ty.ok) if ty.ok is not None else None
        err = param_reader(ty.err) if ty.err is not None else None

        def result(store: Any, value: Any) -> Any:
            case, payload = cases.split(value, exact_first=True)
            if case.name == "ok":
                return Ok(payload if ok is None else ok(store, payload))
            return Err(payload if err is None else err(store, payload))

        return result
    if isinstance(ty, WitOption):
        some = param_reader(ty.payload)
        options = ty.cases
        if not options.tagged and some is None:
            return None

        def option(store: Any, value: Any) -> Any:
            case, payload = options.split(value, exact_first=True)
            if case.name == "none":
                return None
            return payload if some is None else some(store, payload)

        return option
    if isinstance(ty, WitVariant):
        variants = ty.cases
        readers = {
            case.name: param_reader(p) if p is not None else None
            for case, p in zip(variants.cases, ty.payloads, strict=True)
        }

        def variant(store: Any, value: Any) -> Any:
            case, payload = variants.split(value, exact_first=True)
            read = readers[case.name]
            return Variant(case.name, payload if read is None else read(store, payload))

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
