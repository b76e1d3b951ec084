"""Fast calls into component exports: a function's types are compiled once.

``wasmtime.component.Func.__call__`` re-derives the function type on every call
(``Func.type``, ``RecordType.fields``, ``ListType.element``... each building new
ValType objects through the C API) and converts ``list<u8>`` one element at a
time. For the hello HTTP handler that is ~140 of the ~155 us a call takes.
``FastFunc`` reads the type once and compiles it (``_compile``) into a tree of
converters with cached field names and children, which move values through raw
memory. The converters that need nothing of a type but their compiled children
(scalars, strings, enums, flags, lists, tuples, records) are in
``host.runtime.fastcall_values``, with the C layout both modules use. This module walks
wasmtime-py's types and keeps the converters that need more of them: variant,
option and result (their cases follow wasmtime-py's class rules) and the
fallback to wasmtime-py's own.

Memory ownership mirrors wasmtime-py (``wasmtime/component/_types.py``):

* everything the C side frees is allocated by the C side (see
  ``host.runtime.fastcall_values``); variant/option/result payloads are boxed by
  ``wasmtime_component_val_new``;
* a lowered value is always a valid value owning everything allocated so far,
  so ``wasmtime_component_val_delete`` on each parameter after the call frees
  the whole tree, also when lowering failed half-way (Func.__call__ does the
  same for the parameters it converted);
* the result is lifted without freeing anything, then freed by one
  ``wasmtime_component_val_delete`` of the root. wasmtime-py frees piecewise
  instead and releases payload boxes with ``val_delete`` rather than
  ``val_free``, which leaks the box of every option/result/variant payload;
  here the root's delete drops the boxes too. Values lifted by wasmtime-py's own
  converters (the fallback, e.g. resources) consume their slot, which is then
  reset to an empty ``bool`` so the root delete skips it, as wasmtime-py does
  for its children.

Values in and out are exactly what wasmtime-py accepts and produces. Kinds not
specialised here (resources, futures, streams, error-context) use the ValType's
own ``convert_to_c``/``convert_from_c``.

The call releases the GIL, as wasmtime-py's does, since wasm may run long and
host functions need the GIL.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, addressof, c_size_t, c_ubyte, c_void_p
from typing import Any

import wasmtime
from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as wc
from wasmtime.component._enter import maybe_raise_last_exn

from host.runtime.fastcall_values import (
    BOOL_KIND,
    OF,
    OPTION_KIND,
    PTR,
    RESULT_KIND,
    RESULT_VAL,
    SCALARS,
    VAL,
    VARIANT_KIND,
    VARIANT_VAL,
    BytesConv,
    Conv,
    ListConv,
    RecordConv,
    TupleConv,
    Val,
    ValImage,
    byte_vec_new,
    string_of,
    val_delete,
    val_new,
)

__all__ = ["FastFunc"]

# The call releases the GIL (CFUNCTYPE), like wasmtime-py's binding.
_func_call = ctypes.CFUNCTYPE(
    POINTER(ffi.wasmtime_error_t),
    c_void_p,
    POINTER(ffi.wasmtime_context_t),
    c_void_p,
    c_size_t,
    c_void_p,
    c_size_t,
)(("wasmtime_component_func_call", ffi.dll))


# -- variant, option, result -------------------------------------------------


class _Case:
    """One case of a variant-like type: its name, payload converter, classes."""

    __slots__ = ("classes", "conv", "encoded", "index", "name")

    def __init__(self, index: int, name: str, ty: wc.ValType | None) -> None:
        self.index = index
        self.name = name
        self.encoded = name.encode("utf-8")
        self.conv = None if ty is None else _compile(ty)
        classes: set[type] = set()
        if ty is not None:
            ty.add_classes(classes)
        # The classes an untagged payload must be an instance of.
        self.classes = tuple(classes)


def _tagged(types: list[wc.ValType | None]) -> bool:
    """wasmtime-py's VariantLikeType._tagged: Variant objects iff case classes overlap."""
    seen: set[type] = set()
    for ty in types:
        case: set[type] = set()
        if ty is None:
            case.add(object)
        else:
            ty.add_classes(case)
        if case & seen:
            return True
        seen |= case
    return False


class _Cases(Conv):
    """Case selection and payload boxing shared by variant, option and result."""

    __slots__ = ("_by_name", "_cases", "_tagged")

    def __init__(self, cases: list[tuple[str, wc.ValType | None]]) -> None:
        self._cases = tuple(_Case(i, name, ty) for i, (name, ty) in enumerate(cases))
        self._by_name = {c.name: c for c in reversed(self._cases)}
        self._tagged = _tagged([ty for _, ty in cases])

    def _select(self, val: Any) -> tuple[_Case, Any]:
        """The case `val` lowers to and its payload, by wasmtime-py's rules."""
        if self._tagged:
            if not isinstance(val, wc.Variant):
                raise TypeError("expected Variant type")
            case = self._by_name.get(val.tag)
            if case is not None:
                return case, val.payload
        else:
            for case in self._cases:
                if case.conv is None:
                    if val is None:
                        return case, None
                elif isinstance(val, case.classes):
                    return case, val
        raise ValueError("value not valid for this variant")

    def _box(self, store: Any, case: _Case, payload: Any) -> int:
        """Lower the payload and move it into a C box (0 for a payload-less case)."""
        if case.conv is None:
            return 0
        image = ValImage()
        address = addressof(image)
        try:
            case.conv.lower(store, payload, image, address, 0)
        except BaseException:
            val_delete(address)
            raise
        box: int = val_new(address)
        return box

    def _lift_case(self, case: _Case, box: int) -> Any:
        if case.conv is None:
            return wc.Variant(case.name) if self._tagged else None
        payload = case.conv.lift(ValImage.from_address(box), box, 0)
        return wc.Variant(case.name, payload) if self._tagged else payload


class _Variant(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        box = self._box(store, case, payload)
        byte_vec_new(addr + off + OF, len(case.encoded), case.encoded)
        PTR.pack_into(mv, off + VARIANT_VAL, box)
        mv[off] = VARIANT_KIND

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        tag = string_of(mv, off + OF)
        case = self._by_name.get(tag)
        if case is None:
            raise ValueError(f"tag {tag} not found in variant cases")
        return self._lift_case(case, PTR.unpack_from(mv, off + VARIANT_VAL)[0])


class _Option(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        PTR.pack_into(mv, off + OF, self._box(store, case, payload))
        mv[off] = OPTION_KIND

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        box = PTR.unpack_from(mv, off + OF)[0]
        return self._lift_case(self._cases[1 if box else 0], box)


class _Result(_Cases):
    __slots__ = ()

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        case, payload = self._select(val)
        box = self._box(store, case, payload)
        mv[off + OF] = 1 if case.index == 0 else 0
        PTR.pack_into(mv, off + RESULT_VAL, box)
        mv[off] = RESULT_KIND

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        case = self._cases[0 if mv[off + OF] else 1]
        return self._lift_case(case, PTR.unpack_from(mv, off + RESULT_VAL)[0])


# -- everything else ----------------------------------------------------------


class _Fallback(Conv):
    """A kind left to wasmtime-py's own converters (resources, futures, ...)."""

    __slots__ = ("_ty",)

    def __init__(self, ty: wc.ValType) -> None:
        self._ty = ty

    def lower(self, store: Any, val: Any, mv: Any, addr: int, off: int) -> None:
        raw = Val.from_address(addr + off)
        try:
            self._ty.convert_to_c(store, val, ctypes.pointer(raw))
        except BaseException:
            # OwnType sets the kind before taking the handle, so a failure can
            # leave a resource kind without a resource. Nothing was allocated
            # yet; an empty bool keeps the slot valid for the final delete.
            raw.kind = BOOL_KIND
            raw.of.boolean = False
            raise

    def lift(self, mv: Any, addr: int, off: int) -> Any:
        raw = Val.from_address(addr + off)
        val = self._ty.convert_from_c(raw)
        # convert_from_c consumed the value; an empty bool keeps the root's delete off it.
        raw.kind = BOOL_KIND
        raw.of.boolean = False
        return val


def _compile(ty: wc.ValType) -> Conv:
    """The converter for one wasmtime-py ValType (walks the type once)."""
    scalar = SCALARS.get(type(ty))
    if scalar is not None:
        return scalar()
    if isinstance(ty, wc.ListType):
        element = ty.element
        return BytesConv() if isinstance(element, wc.U8) else ListConv(_compile(element))
    if isinstance(ty, wc.RecordType):
        return RecordConv([(name, _compile(field)) for name, field in ty.fields])
    if isinstance(ty, wc.TupleType):
        return TupleConv([_compile(element) for element in ty.elements])
    try:
        if isinstance(ty, wc.VariantType):
            return _Variant(ty.cases)
        if isinstance(ty, wc.OptionType):
            return _Option([("none", None), ("some", ty.payload)])
        if isinstance(ty, wc.ResultType):
            return _Result([("ok", ty.ok), ("err", ty.err)])
    except NotImplementedError:
        # A payload wasmtime-py cannot classify (error-context): fail at call
        # time, as Func does, rather than when the function is wrapped.
        pass
    return _Fallback(ty)


# -- calls --------------------------------------------------------------------


def _raise_call_error(error: Any) -> None:
    """What wasmtime-py's enter_wasm does with an error from the C API.

    A Python exception raised by a host function was parked by the host-call
    trampoline; it is re-raised in place of the generic wasmtime error.
    """
    exc = WasmtimeError._from_ptr(error)
    maybe_raise_last_exn()
    raise exc


class FastFunc:
    """A component export with its types compiled once; a drop-in for ``Func``.

    ``FastFunc(func, store)(store, *params)`` takes and returns the same values
    as ``func(store, *params)``. Keep one per (instance, export), as with
    ``Func``; it holds no per-call state, so calls from several threads are as
    safe as they are with ``Func`` (i.e. the store must not be shared).
    """

    __slots__ = (
        "_func",
        "_func_address",
        "_lift",
        "_lowers",
        "_nparams",
        "_offsets",
        "_params",
        "func",
        "type",
    )

    def __init__(self, func: wc.Func, store: wasmtime.Store) -> None:
        self.func = func
        self.type = func.type(store)
        params = self.type.params
        result = self.type.result
        self._lowers = tuple(_compile(ty).lower for _, ty in params)
        self._nparams = len(params)
        self._offsets = tuple(range(0, len(params) * VAL, VAL))
        # At least one slot, so the C side never sees a null parameter array.
        self._params = c_ubyte * (max(len(params), 1) * VAL)
        self._lift = None if result is None else _compile(result).lift
        # Func keeps the raw wasmtime_component_func_t alive; `func` keeps Func alive.
        self._func = func._func
        self._func_address = addressof(func._func)

    def __call__(self, store: Any, *params: Any) -> Any:
        n = self._nparams
        if len(params) != n:
            raise TypeError(
                f"wrong number of parameters provided: given {len(params)}, expected {n}"
            )
        context = store._context()
        image = self._params()
        address = addressof(image)
        try:
            for lower, o, param in zip(self._lowers, self._offsets, params, strict=True):
                lower(store, param, image, address, o)
            return self._invoke(context, address)
        finally:
            # Unused slots are zeroes, an empty bool: deleting them is a no-op.
            for o in self._offsets:
                val_delete(address + o)

    def _invoke(self, context: Any, params: int) -> Any:
        n = self._nparams
        if self._lift is None:
            error = _func_call(self._func_address, context, params, n, None, 0)
            if error:
                _raise_call_error(error)
            return None
        result = ValImage()
        address = addressof(result)
        error = _func_call(self._func_address, context, params, n, address, 1)
        if error:
            _raise_call_error(error)
        try:
            return self._lift(result, address, 0)
        finally:
            val_delete(address)

    def post_return(self, store: Any) -> None:
        self.func.post_return(store)
