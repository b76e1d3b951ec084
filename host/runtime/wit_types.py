"""WIT types as plain data, described once from wasmtime's component types.

wasmtime-py's types (``wasmtime.component.ValType`` and its subclasses) are
views of C objects: each property (``RecordType.fields``,
``ListType.element``...) asks the C API again and builds new objects. Code
that converts values compiles a function's type once into converters; it does
so from this description, read once by ``describe_func``: frozen dataclasses
naming the WIT kinds, with the case rules of variants, options and results
(``host.runtime.wit_values.WitCases``) already worked out.

Two compilers read it: ``host.runtime.lowering`` (values into and out of
wasm calls) and ``host.wire`` (values across hosts), which therefore never
touches wasmtime itself. Kinds whose values are bound to one store
(resources, futures, streams, error contexts) are ``WitOpaque``: they keep
wasmtime's type for the runtime, which lets wasmtime-py convert them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from wasmtime import component as wc

from host.runtime.wit_values import HANDLE_CLASSES, WitCases

__all__ = [
    "ComponentFuncType",
    "WitEnum",
    "WitFlags",
    "WitFunc",
    "WitList",
    "WitOpaque",
    "WitOption",
    "WitPrimitive",
    "WitRecord",
    "WitResult",
    "WitTuple",
    "WitType",
    "WitVariant",
    "describe",
    "describe_func",
]

# A component function's type as wasmtime reads it (what ``Func.type(store)`` returns).
ComponentFuncType: TypeAlias = wc.FuncType


@dataclass(frozen=True, slots=True)
class WitPrimitive:
    """A kind without parts, by its WIT name: bool, s8..u64, f32, f64, char, string."""

    name: str


@dataclass(frozen=True, slots=True)
class WitList:
    element: WitType


@dataclass(frozen=True, slots=True)
class WitTuple:
    elements: tuple[WitType, ...]


@dataclass(frozen=True, slots=True)
class WitRecord:
    """A record's fields in declaration order, by their WIT (kebab-case) names."""

    fields: tuple[tuple[str, WitType], ...]


@dataclass(frozen=True, slots=True)
class WitEnum:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WitFlags:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WitVariant:
    """A variant: its cases and, aligned with them, each case's payload (None: none)."""

    cases: WitCases
    payloads: tuple[WitType | None, ...]


@dataclass(frozen=True, slots=True)
class WitOption:
    """An option: the cases ``none`` and ``some`` (carrying ``payload``)."""

    cases: WitCases
    payload: WitType


@dataclass(frozen=True, slots=True)
class WitResult:
    """A result: the cases ``ok`` and ``err``, either without a payload (None)."""

    cases: WitCases
    ok: WitType | None
    err: WitType | None


@dataclass(frozen=True, slots=True)
class WitOpaque:
    """A kind only wasmtime-py converts, bound to one store (resources, streams...).

    ``what`` names it for messages; ``native`` is wasmtime's type, for the runtime.
    """

    what: str
    native: Any = field(compare=False, repr=False)

    @property
    def is_handle(self) -> bool:
        """An ``own<...>`` or ``borrow<...>`` of a resource (a host function may take one)."""
        return isinstance(self.native, wc.OwnType | wc.BorrowType)


WitType: TypeAlias = (
    WitPrimitive
    | WitList
    | WitTuple
    | WitRecord
    | WitEnum
    | WitFlags
    | WitVariant
    | WitOption
    | WitResult
    | WitOpaque
)


@dataclass(frozen=True, slots=True)
class WitFunc:
    """A function's parameters (name, type) in declaration order and its result."""

    params: tuple[tuple[str, WitType], ...]
    result: WitType | None


# The kinds without parts, by wasmtime-py type class.
_PRIMITIVES: dict[type, WitPrimitive] = {
    wc.Bool: WitPrimitive("bool"),
    wc.S8: WitPrimitive("s8"),
    wc.U8: WitPrimitive("u8"),
    wc.S16: WitPrimitive("s16"),
    wc.U16: WitPrimitive("u16"),
    wc.S32: WitPrimitive("s32"),
    wc.U32: WitPrimitive("u32"),
    wc.S64: WitPrimitive("s64"),
    wc.U64: WitPrimitive("u64"),
    wc.F32: WitPrimitive("f32"),
    wc.F64: WitPrimitive("f64"),
    wc.Char: WitPrimitive("char"),
    wc.String: WitPrimitive("string"),
}

_OPAQUE: dict[type, str] = {
    wc.OwnType: "a resource handle (own<...>)",
    wc.BorrowType: "a resource handle (borrow<...>)",
    wc.FutureType: "a future",
    wc.StreamType: "a stream",
    wc.ErrorContext: "an error-context",
}


def _classes(ty: wc.ValType | None) -> frozenset[type] | None:
    """The classes wasmtime-py represents a case's payload with (None: no payload)."""
    if ty is None:
        return None
    found: set[type] = set()
    ty.add_classes(found)
    if wc.ResourceHost in found:  # handles as host functions convert them
        found |= HANDLE_CLASSES
    return frozenset(found)


def _cases(
    kind: str, cases: list[tuple[str, wc.ValType | None]]
) -> tuple[WitCases, tuple[WitType | None, ...]]:
    """The case rules of a variant-like type and its payloads, described."""
    payloads = tuple(None if ty is None else describe(ty) for _, ty in cases)
    return WitCases(kind, [(name, _classes(ty)) for name, ty in cases]), payloads


def _variant_like(ty: wc.ValType) -> WitType:
    if isinstance(ty, wc.VariantType):
        cases, payloads = _cases("variant", ty.cases)
        return WitVariant(cases, payloads)
    if isinstance(ty, wc.OptionType):
        cases, (_, some) = _cases("option", [("none", None), ("some", ty.payload)])
        assert some is not None
        return WitOption(cases, some)
    assert isinstance(ty, wc.ResultType)
    cases, (ok, err) = _cases("result", [("ok", ty.ok), ("err", ty.err)])
    return WitResult(cases, ok, err)


def describe(ty: wc.ValType) -> WitType:
    """The description of one wasmtime-py ValType (walks the type once)."""
    primitive = _PRIMITIVES.get(type(ty))
    if primitive is not None:
        return primitive
    if isinstance(ty, wc.ListType):
        return WitList(describe(ty.element))
    if isinstance(ty, wc.RecordType):
        return WitRecord(tuple((name, describe(f)) for name, f in ty.fields))
    if isinstance(ty, wc.TupleType):
        return WitTuple(tuple(describe(e) for e in ty.elements))
    if isinstance(ty, wc.EnumType):
        return WitEnum(tuple(ty.names))
    if isinstance(ty, wc.FlagsType):
        return WitFlags(tuple(ty.names))
    if isinstance(ty, wc.VariantType | wc.OptionType | wc.ResultType):
        try:
            return _variant_like(ty)
        except NotImplementedError:
            # A payload whose classes wasmtime-py cannot tell (error-context):
            # its own converters fail at call time, and so do ours.
            return WitOpaque("an error-context", ty)
    return WitOpaque(_OPAQUE.get(type(ty), f"a {type(ty).__name__}"), ty)


def describe_func(func_type: ComponentFuncType) -> WitFunc:
    """The description of a component function's type."""
    params = tuple((name, describe(ty)) for name, ty in func_type.params)
    result = func_type.result
    return WitFunc(params, None if result is None else describe(result))
